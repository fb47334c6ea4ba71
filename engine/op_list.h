// The one list of kernel families and slots. Everything that names a slot is derived from it:
// the KernelTable members and their signatures (engine/op_table.h), the slot names in error
// messages and in supports(), each backend's register_<family> declarations
// (kernels/*/..._util.h) and calls (kernels/registry.cpp), the cross-backend test harness
// (tests/cuda/test_cuda_backends.cpp) and docs/SUPPORT_MATRIX.md (tools/op_support.cpp).
// The pattern of ggml's op enum and ATen's native_functions.yaml, as an X-macro list: define
// ENGINE_FAMILY and/or ENGINE_SLOT, then include this file; both are undefined at its end.
//
// ENGINE_FAMILY(family, native, cudnn): one register_<family> function per backend that has
// kernels for the family (kernels/cpu/<family>.cpp always; every slot needs a CPU kernel, the
// reference of every other backend). `native`: `kernel` (kernels/cuda/<family>.cu registers it)
// or `missing`. `cudnn`: `cuDNN` or `cuBLAS` (kernels/cudnn/<family>.cpp registers the slots
// that library implements; the others keep the native kernel), or `native` (the cudnn backend
// runs the native kernels for the whole family: its table starts as a copy of native's).
//
// ENGINE_SLOT(family, slot, return type, (parameters)): one KernelTable member. Argument order
// is always (inputs..., outputs..., params). Kernels receive contiguous tensors on one device
// with outputs already allocated; they check nothing about shapes (the op did).
//
// No include guard: this file is meant to be included several times.

#ifndef ENGINE_FAMILY
#define ENGINE_FAMILY(family, native, cudnn)
#endif
#ifndef ENGINE_SLOT
#define ENGINE_SLOT(family, slot, ret, params)
#endif

// clang-format off

ENGINE_FAMILY(conv2d, kernel, cuDNN)
// y = conv(x, w) + b. b may be undefined.
ENGINE_SLOT(conv2d, conv2d_forward, void,
            (const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const Conv2dParams& p))
ENGINE_SLOT(conv2d, conv2d_backward_data, void,
            (const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p))
// gw (and gb when defined) are overwritten, not accumulated.
ENGINE_SLOT(conv2d, conv2d_backward_weight, void,
            (const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb, const Conv2dParams& p))

ENGINE_FAMILY(linear, kernel, cuBLAS)
// y[N,out] = x[N,in] w[out,in]^T + b
ENGINE_SLOT(linear, linear_forward, void,
            (const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y))
ENGINE_SLOT(linear, linear_backward_data, void, (const Tensor& gy, const Tensor& w, Tensor& gx))
ENGINE_SLOT(linear, linear_backward_weight, void,
            (const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb))

// cuDNN returns no indices, so the cudnn backend keeps the native max pooling.
ENGINE_FAMILY(pool, kernel, cuDNN)
// indices (I64): flat h*W+w position of each maximum within its (n, c) plane.
ENGINE_SLOT(pool, max_pool2d_forward, void,
            (const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p))
ENGINE_SLOT(pool, max_pool2d_backward, void,
            (const Tensor& gy, const Tensor& indices, Tensor& gx, const Pool2dParams& p))
ENGINE_SLOT(pool, avg_pool2d_forward, void, (const Tensor& x, Tensor& y, const Pool2dParams& p))
ENGINE_SLOT(pool, avg_pool2d_backward, void, (const Tensor& gy, Tensor& gx, const Pool2dParams& p))
// Output size comes from y / gy's shape; bins as PyTorch: [floor(i*H/oh), ceil((i+1)*H/oh)).
ENGINE_SLOT(pool, adaptive_avg_pool2d_forward, void, (const Tensor& x, Tensor& y))
ENGINE_SLOT(pool, adaptive_avg_pool2d_backward, void, (const Tensor& gy, Tensor& gx))

ENGINE_FAMILY(batch_norm, kernel, cuDNN)
// Training: normalise with batch statistics, write save_mean/save_invstd [C], and update
// running_mean/var (when defined) with momentum and the unbiased batch variance.
ENGINE_SLOT(batch_norm, batch_norm_forward_train, void,
            (const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
             Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean, Tensor& running_var,
             float momentum, float eps))
ENGINE_SLOT(batch_norm, batch_norm_forward_eval, void,
            (const Tensor& x, const Tensor& weight, const Tensor& bias,
             const Tensor& running_mean, const Tensor& running_var, Tensor& y, float eps))
// Gradients for a training-mode forward (mean/invstd are the saved batch statistics) or an
// eval-mode one (training=false: mean/invstd from the running statistics, constants).
// gx, gw, gb may each be undefined when not wanted.
ENGINE_SLOT(batch_norm, batch_norm_backward, void,
            (const Tensor& gy, const Tensor& x, const Tensor& weight, const Tensor& mean,
             const Tensor& invstd, bool training, Tensor& gx, Tensor& gw, Tensor& gb))

ENGINE_FAMILY(activation, kernel, cuDNN)
ENGINE_SLOT(activation, activation_forward, void, (Activation a, const Tensor& x, Tensor& y))
// All four derivatives are computed from the output y.
ENGINE_SLOT(activation, activation_backward, void,
            (Activation a, const Tensor& y, const Tensor& gy, Tensor& gx))

ENGINE_FAMILY(dropout, kernel, native)
// Inverted dropout's mask applied to x: y_i = x_i / (1 - p) when Philox::uniform(seed, offset,
// i) >= p, else 0. Forward applies it to the input and backward to the output's gradient, with
// the same (seed, offset), so the mask is regenerated instead of stored: one kernel for both.
ENGINE_SLOT(dropout, dropout, void,
            (const Tensor& x, Tensor& y, float p, uint64_t seed, uint64_t offset))

ENGINE_FAMILY(elementwise, kernel, native)
ENGINE_SLOT(elementwise, add, void, (const Tensor& a, const Tensor& b, Tensor& y))  // y = a + b
ENGINE_SLOT(elementwise, add_inplace, void, (Tensor& y, const Tensor& x, float alpha))  // y += alpha * x
ENGINE_SLOT(elementwise, scale_inplace, void, (Tensor& y, float s))  // y *= s
ENGINE_SLOT(elementwise, sum_squares, double, (const Tensor& x))     // sum of x^2
ENGINE_SLOT(elementwise, fill, void, (Tensor& y, float value))

ENGINE_FAMILY(concat, kernel, native)
// Concatenation along `dim` and its inverse (split gy into the parts' shapes).
ENGINE_SLOT(concat, concat_forward, void,
            (const std::vector<Tensor>& xs, int64_t dim, Tensor& y))
ENGINE_SLOT(concat, concat_backward, void,
            (const Tensor& gy, int64_t dim, std::vector<Tensor>& gxs))

ENGINE_FAMILY(loss, kernel, native)
// Softmax cross-entropy over logits [N, C] with int64 targets [N]. weight [C] may be undefined.
// Writes the mean loss (PyTorch: divided by the sum of target weights) into loss [] and the
// softmax into probs [N, C] for backward.
ENGINE_SLOT(loss, cross_entropy_forward, void,
            (const Tensor& logits, const Tensor& targets, const Tensor& weight,
             float label_smoothing, Tensor& loss, Tensor& probs))
ENGINE_SLOT(loss, cross_entropy_backward, void,
            (const Tensor& probs, const Tensor& targets, const Tensor& weight,
             float label_smoothing, float grad_loss, Tensor& glogits))

ENGINE_FAMILY(optim, kernel, native)
// Fused optimizer updates on one parameter tensor and its state tensors.
ENGINE_SLOT(optim, sgd_update, void,
            (Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdHyper& h))
ENGINE_SLOT(optim, rmsprop_update, void,
            (Tensor& param, const Tensor& grad, Tensor& square_avg, Tensor& grad_avg,
             Tensor& momentum_buf, const RmspropHyper& h))
ENGINE_SLOT(optim, adam_update, void,
            (Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
             const AdamHyper& h))

// clang-format on

#undef ENGINE_FAMILY
#undef ENGINE_SLOT
