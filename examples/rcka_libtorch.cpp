// cka::rcka inside LibTorch: rcka_loss wrapped as a torch::autograd::Function that works on the tensors'
// own memory (Eigen::Map, no copy of a contiguous tensor), float32 or float64, differentiable once; then
// used to distil a teacher MLP into a smaller student.
//
// A seeded synthetic task: 10 classes, 20-dimensional inputs drawn around class centres pushed through a
// fixed random nonlinearity. The teacher (20-256-10) trains on 4000 labelled samples; the student
// (20-16-10) sees only 300 labels, once with cross-entropy alone and once with cross-entropy + RCKA to the
// teacher's logits on those samples. Prints the held-out accuracy of all three.
#include <cka/rcka.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <string>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The loss and its gradient on the tensors' memory (row-major Eigen maps of contiguous tensors), T = float or
// double; the gradient written by the library straight into a new tensor, the value as a 0-d tensor of the
// student's dtype.
template <class T>
torch::Tensor loss_and_grad(const torch::Tensor& s, const torch::Tensor& t, const cka::rcka::rcka_weights& w,
                            torch::Tensor& grad) {
  using rows = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const rows> sm(s.data_ptr<T>(), s.size(0), s.size(1));
  const Eigen::Map<const rows> tm(t.data_ptr<T>(), t.size(0), t.size(1));
  grad = torch::empty_like(s);  // s is contiguous, and so is grad
  const auto r = cka::rcka::rcka_loss(sm, tm, Eigen::Map<rows>(grad.data_ptr<T>(), s.size(0), s.size(1)), w);
  return torch::scalar_tensor(r.value, s.options());
}

// grad · scale as a graph node that refuses a second derivative: without it, differentiating the gradient
// (create_graph, a gradient penalty) would silently treat the saved gradient as a constant.
struct first_order_only : torch::autograd::Function<first_order_only> {
  static torch::Tensor forward(AutogradContext*, const torch::Tensor& grad, const torch::Tensor& scale,
                               const torch::Tensor& /*student: ties the node to it*/) {
    return grad * scale;
  }
  static tensor_list backward(AutogradContext*, tensor_list) {
    TORCH_CHECK(false, "rcka: the loss is differentiable once (its backward has no second derivative)");
    return {};
  }
};

// Loss = weights.sample·(1 − CKA of sample relations) + weights.cls·(1 − CKA of class relations), on float32
// or float64 CPU logits (a non-contiguous tensor is copied once; the teacher is converted to the student's
// dtype); cka's errors (different batch sizes, NaN, …) propagate as its exceptions.
struct rcka_function : torch::autograd::Function<rcka_function> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& student, const torch::Tensor& teacher,
                               double sample_weight, double class_weight) {
    TORCH_CHECK(student.dim() == 2 && teacher.dim() == 2 && student.device().is_cpu() && teacher.device().is_cpu(),
                "rcka: 2-D CPU logits");
    TORCH_CHECK(student.scalar_type() == torch::kFloat32 || student.scalar_type() == torch::kFloat64,
                "rcka: float32 or float64 logits, not ", student.scalar_type());
    const torch::Tensor s = student.contiguous(), t = teacher.detach().to(student.scalar_type()).contiguous();
    const cka::rcka::rcka_weights w{sample_weight, class_weight};
    torch::Tensor grad;
    const torch::Tensor value = student.scalar_type() == torch::kFloat64 ? loss_and_grad<double>(s, t, w, grad)
                                                                         : loss_and_grad<float>(s, t, w, grad);
    ctx->save_for_backward({grad, student});
    return value;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grad_output) {
    const tensor_list saved = ctx->get_saved_variables();
    return {first_order_only::apply(saved[0], grad_output[0], saved[1]), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

// The wrapper's promises, checked before the demonstration: float64 gives float32's loss and gradient (to
// float's rounding), and a second derivative through the loss is refused rather than silently wrong.
bool wrapper_holds() {
  const torch::Tensor s64 = torch::randn({64, 10}, torch::kFloat64).requires_grad_(true);
  const torch::Tensor t64 = torch::randn({64, 10}, torch::kFloat64);
  const torch::Tensor s32 = s64.detach().to(torch::kFloat32).requires_grad_(true);
  const torch::Tensor l64 = rcka_function::apply(s64, t64, 1.0, 1.0);
  const torch::Tensor l32 = rcka_function::apply(s32, t64, 1.0, 1.0);
  l64.backward();
  l32.backward();
  const bool agree = std::abs(l64.item<double>() - l32.item<double>()) <= 1e-5 * std::abs(l64.item<double>()) &&
                     torch::allclose(s32.grad().to(torch::kFloat64), s64.grad(), 1e-4, 1e-5);
  bool refused = false;
  try {
    const torch::Tensor g = torch::autograd::grad({rcka_function::apply(s64, t64, 1.0, 1.0)}, {s64}, {}, true, true)[0];
    g.sum().backward();
  } catch (const c10::Error& e) {
    refused = std::string(e.what()).find("differentiable once") != std::string::npos;
  }
  if (!agree) std::fprintf(stderr, "rcka_libtorch: float32 and float64 losses disagree\n");
  if (!refused) std::fprintf(stderr, "rcka_libtorch: a second derivative was not refused\n");
  return agree && refused;
}

struct mlp : torch::nn::Module {
  mlp(int64_t hidden) : fc1(register_module("fc1", torch::nn::Linear(20, hidden))),
                        fc2(register_module("fc2", torch::nn::Linear(hidden, 10))) {}
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::relu(fc1(x))); }
  torch::nn::Linear fc1, fc2;
};

// Inputs around 10 class centres, bent by a fixed random tanh layer so the classes are not linear.
void make_data(int64_t n, torch::Tensor& x, torch::Tensor& y) {
  static const torch::Tensor centres = 1.5 * torch::randn({10, 20});
  static const torch::Tensor bend = torch::randn({20, 20}) / 4.0;
  y = torch::randint(0, 10, {n}, torch::kLong);
  const torch::Tensor z = centres.index_select(0, y) + torch::randn({n, 20});
  x = z + torch::tanh(z.matmul(bend)) * 2.0;
}

double accuracy(mlp& model, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  return model.forward(x).argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
}

void train(mlp& model, const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor* teacher_logits,
           int steps) {
  torch::optim::Adam opt(model.parameters(), torch::optim::AdamOptions(1e-2));
  for (int step = 0; step < steps; ++step) {
    const torch::Tensor logits = model.forward(x);
    torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
    if (teacher_logits) loss = loss + rcka_function::apply(logits, *teacher_logits, 1.0, 1.0);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
}

}  // namespace

int main() {
  torch::manual_seed(2024);
  torch::set_num_threads(2);
  if (!wrapper_holds()) return 1;
  torch::Tensor x_teacher, y_teacher, x_few, y_few, x_test, y_test;
  make_data(4000, x_teacher, y_teacher);
  make_data(300, x_few, y_few);
  make_data(4000, x_test, y_test);

  mlp teacher(256);
  train(teacher, x_teacher, y_teacher, nullptr, 400);
  torch::Tensor teacher_logits;
  {
    torch::NoGradGuard no_grad;
    teacher_logits = teacher.forward(x_few);
  }

  torch::manual_seed(7);
  mlp alone(16);
  torch::manual_seed(7);
  mlp distilled(16);  // the same initial weights
  train(alone, x_few, y_few, nullptr, 300);
  train(distilled, x_few, y_few, &teacher_logits, 300);

  std::printf("held-out accuracy  teacher %.3f | student: cross-entropy %.3f, cross-entropy + RCKA %.3f\n",
              accuracy(teacher, x_test, y_test), accuracy(alone, x_test, y_test),
              accuracy(distilled, x_test, y_test));
  return 0;
}
