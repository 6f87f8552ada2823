// cka::rcka inside LibTorch: rcka_loss wrapped as a torch::autograd::Function that works on the tensors'
// own memory (Eigen::Map, no copy), then used to distil a teacher MLP into a smaller student.
//
// A seeded synthetic task: 10 classes, 20-dimensional inputs drawn around class centres pushed through a
// fixed random nonlinearity. The teacher (20-256-10) trains on 4000 labelled samples; the student
// (20-16-10) sees only 300 labels, once with cross-entropy alone and once with cross-entropy + RCKA to the
// teacher's logits on those samples. Prints the held-out accuracy of all three.
#include <cka/rcka.hpp>

#include <torch/torch.h>

#include <cstdio>

namespace {

using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Loss = weights.sample·(1 − CKA of sample relations) + weights.cls·(1 − CKA of class relations).
struct rcka_function : torch::autograd::Function<rcka_function> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& student,
                               const torch::Tensor& teacher, double sample_weight, double class_weight) {
    const torch::Tensor s = student.contiguous(), t = teacher.detach().contiguous();
    TORCH_CHECK(s.dtype() == torch::kFloat32 && s.dim() == 2 && s.device().is_cpu(), "rcka: float32 CPU 2-D logits");
    const Eigen::Map<const row_major> sm(s.data_ptr<float>(), s.size(0), s.size(1));
    const Eigen::Map<const row_major> tm(t.data_ptr<float>(), t.size(0), t.size(1));
    const auto r = cka::rcka::rcka_loss(sm, tm, {sample_weight, class_weight});
    torch::Tensor grad = torch::empty_like(s);
    Eigen::Map<row_major>(grad.data_ptr<float>(), s.size(0), s.size(1)) = r.grad;
    ctx->save_for_backward({grad});
    return torch::tensor(r.value);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_output) {
    const torch::Tensor grad = ctx->get_saved_variables()[0];
    return {grad * grad_output[0], torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

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
