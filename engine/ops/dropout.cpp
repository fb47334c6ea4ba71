// dropout: inverted dropout, y = x * mask / (1 - p) with mask_i = [uniform_i >= p]. The mask is
// never stored: forward reserves numel counters from the generator, and backward regenerates
// the same mask from (seed, offset), so dx = dy * mask / (1 - p) costs no memory between passes.
#include "engine/autograd.h"
#include "engine/ops.h"

namespace engine {

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen) {
  const char* op = "dropout";
  check_float(op, "input", x);
  ENGINE_CHECK(p >= 0.f && p <= 1.f, op, ": p must be in [0, 1], got ", p, " (input ",
               shape_str(x.shape()), ")");
  if (!training || p == 0.f) return x;

  if (p == 1.f) {  // everything dropped; 1 / (1 - p) would be inf
    Tensor y = Tensor::zeros(x.shape(), DType::F32, x.device());
    if (autograd::needs_record({&x})) {
      autograd::record(op, y, {&x}, [in = x.shape()](const Tensor& gy, const std::vector<bool>&) {
        return std::vector<Tensor>{Tensor::zeros(in, DType::F32, gy.device())};
      });
    }
    return y;
  }

  const uint64_t seed = gen.seed();
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(x.numel()));
  Tensor y = Tensor::empty(x.shape(), DType::F32, x.device());
  ENGINE_KERNEL(x.device(), dropout)(x, y, p, seed, offset);

  if (autograd::needs_record({&x})) {
    autograd::record(op, y, {&x}, [p, seed, offset](const Tensor& gy, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(gy.shape(), DType::F32, gy.device());
      ENGINE_KERNEL(gy.device(), dropout)(gy, gx, p, seed, offset);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

}  // namespace engine
