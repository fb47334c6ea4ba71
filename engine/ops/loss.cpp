// Softmax cross-entropy: the training loss of every classifier in the study. Mean reduction with
// optional class weights and label smoothing, exactly as PyTorch 1.13's F.cross_entropy (the
// formula is in kernels/cpu/loss.cpp). The kernel keeps the softmax for backward, which needs
// nothing else; targets and weights are constants and get no gradient.
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace engine {

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& opt) {
  const char* op = "cross_entropy";
  check_float(op, "logits", logits);
  ENGINE_CHECK(targets.defined(), op, ": targets are undefined");
  check_same_device(op, logits, targets);
  ENGINE_CHECK(logits.dim() == 2, op, ": logits must be 2-D [N, C], got ",
               shape_str(logits.shape()));
  const int64_t n = logits.size(0), c = logits.size(1);
  ENGINE_CHECK(n > 0 && c > 0, op, ": logits ", shape_str(logits.shape()),
               " must have at least one sample and one class");
  ENGINE_CHECK(targets.dtype() == DType::I64, op, ": targets must be i64 class indices, got ",
               dtype_name(targets.dtype()), " with shape ", shape_str(targets.shape()));
  ENGINE_CHECK(targets.dim() == 1 && targets.size(0) == n, op, ": targets ",
               shape_str(targets.shape()), " do not match logits ", shape_str(logits.shape()),
               " (expected [", n, "])");
  const Tensor& w = opt.weight;
  if (w.defined()) {
    check_float(op, "weight", w);
    check_same_device(op, logits, w);
    ENGINE_CHECK(w.dim() == 1 && w.size(0) == c, op, ": weight ", shape_str(w.shape()),
                 " does not match the ", c, " classes of logits ", shape_str(logits.shape()));
  }
  const float ls = opt.label_smoothing;
  ENGINE_CHECK(ls >= 0.f && ls <= 1.f, op, ": label_smoothing must be in [0, 1], got ", ls);
  // A bad index would read outside a row in the kernel; checking here reads N int64s on the host.
  std::vector<int64_t> t = targets.to_vector_i64();
  for (int64_t i = 0; i < n; ++i)
    ENGINE_CHECK(t[i] >= 0 && t[i] < c, op, ": target ", t[i], " at index ", i,
                 " is out of range for ", c, " classes (logits ", shape_str(logits.shape()), ")");

  Tensor loss = Tensor::empty({}, DType::F32, logits.device());
  Tensor probs = Tensor::empty(logits.shape(), DType::F32, logits.device());
  ENGINE_KERNEL(logits.device(), cross_entropy_forward)(logits, targets, w, ls, loss, probs);

  if (autograd::needs_record({&logits})) {
    Tensor ts = targets.detach(), ws = w.defined() ? w.detach() : Tensor();
    autograd::record(
        op, loss, {&logits}, [probs, ts, ws, ls](const Tensor& gy, const std::vector<bool>&) {
          Tensor g = Tensor::empty(probs.shape(), DType::F32, gy.device());
          ENGINE_KERNEL(gy.device(), cross_entropy_backward)(probs, ts, ws, ls, gy.item(), g);
          return std::vector<Tensor>{g};
        });
  }
  return loss;
}

}  // namespace engine
