// Distillation with no framework: a hand-written softmax-regression student learns from a fixed teacher
// with cross-entropy plus the RCKA loss, whose gradient comes from cka::rcka. The student's own backward
// pass is two lines (logits = X·W + b), so the whole loop is visible.
//
// Run: ./distill_without_framework   — prints the loss terms every 20 steps and the final accuracies.
#include <cka/rcka.hpp>

#include <cstdio>
#include <random>

namespace {

using mat = cka::matrix<double>;

// The 4 class means in 12 dimensions (fixed seed).
mat class_means() {
  std::mt19937 fixed(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  mat means(4, 12);
  for (Eigen::Index i = 0; i < means.size(); ++i) means.data()[i] = 1.2 * normal(fixed);
  return means;
}

// Seeded 4-class data: class mean plus unit noise.
void make_data(Eigen::Index n, unsigned seed, mat& x, Eigen::VectorXi& y) {
  std::mt19937 engine(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const mat means = class_means();
  x.resize(n, 12);
  y.resize(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    y(i) = static_cast<int>(i % 4);
    for (Eigen::Index j = 0; j < 12; ++j) x(i, j) = means(y(i), j) + normal(engine);
  }
}

// Softmax cross-entropy: mean loss and its gradient with respect to the logits.
double cross_entropy(const mat& logits, const Eigen::VectorXi& y, mat& grad) {
  grad = logits;
  double loss = 0;
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    const double top = logits.row(i).maxCoeff();
    grad.row(i) = (logits.row(i).array() - top).exp().matrix();
    const double z = grad.row(i).sum();
    grad.row(i) /= z;
    loss -= std::log(grad(i, y(i)));
    grad(i, y(i)) -= 1.0;
  }
  grad /= double(logits.rows());
  return loss / double(logits.rows());
}

double accuracy(const mat& logits, const Eigen::VectorXi& y) {
  int right = 0;
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    Eigen::Index k;
    logits.row(i).maxCoeff(&k);
    right += k == y(i);
  }
  return double(right) / double(logits.rows());
}

}  // namespace

int main() {
  mat x, x_test;
  Eigen::VectorXi y, y_test;
  make_data(512, 1, x, y);
  make_data(1024, 2, x_test, y_test);

  // The teacher: a fixed linear map read off the class means (a good classifier for these blobs).
  const mat teacher_w = 2.0 * class_means().transpose();
  const mat teacher_logits_all = x * teacher_w;

  // A random start: at w = 0 every logit row is equal, the relation Gram is constant and CKA undefined
  // (the library throws cka::domain_error rather than return NaN).
  mat w(12, 4);
  {
    std::mt19937 engine(3);
    std::normal_distribution<double> normal(0.0, 0.1);
    for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = normal(engine);
  }
  Eigen::RowVectorXd b = Eigen::RowVectorXd::Zero(4);
  const double lr = 0.5, weight = 1.0;
  const Eigen::Index batch = 64;
  for (int step = 0; step <= 200; ++step) {
    const Eigen::Index r0 = (step * batch) % x.rows();
    const mat xb = x.middleRows(r0, batch);
    const mat logits = (xb * w).rowwise() + b;
    mat g_ce;
    const double ce = cross_entropy(logits, y.segment(r0, batch), g_ce);
    const auto rcka = cka::rcka::rcka_loss(logits, teacher_logits_all.middleRows(r0, batch).eval());
    const mat g = g_ce + weight * rcka.grad;  // ∂(CE + RCKA)/∂logits
    w -= lr * xb.transpose() * g;             // logits = xb·w + b
    b -= lr * g.colwise().sum();
    if (step % 20 == 0) std::printf("step %3d  cross-entropy %.4f  rcka %.4f\n", step, ce, rcka.value);
  }
  const mat test_logits = (x_test * w).rowwise() + b;
  std::printf("held-out accuracy: student %.3f, teacher %.3f\n", accuracy(test_logits, y_test),
              accuracy(x_test * teacher_w, y_test));
  return 0;
}
