// The CUDA runtime glue: availability reporting, error messages, the caching allocator, copies and
// memset, and device-mismatch errors. The first two tests also run without a GPU, where they
// check the no-device path itself (a reason, no throw, the CPU engine unchanged).
#include <functional>

#include "engine/error.h"
#include "engine/ops.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no engine::Error thrown)";
}

TEST(CudaRuntime, AvailabilityIsReportedWithoutThrowing) {
  std::string why;
  bool ok = false;
  ASSERT_NO_THROW(ok = testing::cuda_ready(&why));
  // The native kernels are in the table either way; only the runtime depends on a device.
  EXPECT_TRUE(supports(Backend::Native, &KernelTable::add));
  EXPECT_TRUE(supports(Backend::Native, &KernelTable::activation_forward));
  if (ok) {
    EXPECT_TRUE(why.empty()) << why;
    EXPECT_EQ(allocator_for(DeviceType::CUDA), &cuda::device_allocator());
  } else {
    EXPECT_NE(why.find("cudaGetDeviceCount"), std::string::npos) << why;
    EXPECT_NE(message_of([] {
                Tensor::empty({4}, DType::F32, Device::cuda());
              }).find("no allocator for device type cuda"),
              std::string::npos);
    // The CPU engine is untouched.
    Tensor a = Tensor::full({3}, 1.5f), b = Tensor::full({3}, 2.f);
    EXPECT_EQ(add(a, b).to_vector(), std::vector<float>(3, 3.5f));
  }
}

TEST(CudaRuntime, CheckedCallNamesCallFileLineAndError) {
  auto failing_call = [] { return cudaErrorInvalidValue; };
  const int line = __LINE__ + 1;
  const std::string msg = message_of([&] { ENGINE_CUDA_CHECK(failing_call()); });
  EXPECT_NE(msg.find("failing_call()"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::string(__FILE__) + ":" + std::to_string(line)), std::string::npos) << msg;
  EXPECT_NE(msg.find(cudaGetErrorString(cudaErrorInvalidValue)), std::string::npos) << msg;
  EXPECT_NE(msg.find("cudaErrorInvalidValue"), std::string::npos) << msg;
}

TEST(CudaRuntime, AllocatorReusesFreedBlocks) {
  ENGINE_REQUIRE_CUDA();
  cuda::CachingAllocator& a = cuda::device_allocator();
  void* p = a.allocate(12345);
  const size_t peak = a.peak_bytes(), mallocs = a.driver_allocations();
  a.deallocate(p, 12345);
  EXPECT_GE(a.cached_bytes(), cuda::CachingAllocator::size_class(12345));
  void* q = a.allocate(12345);
  EXPECT_EQ(q, p);
  EXPECT_EQ(a.peak_bytes(), peak);
  EXPECT_EQ(a.driver_allocations(), mallocs);
  a.deallocate(q, 12345);

  // Tensors of one shape, made and dropped in a loop (a training step), reach the driver once.
  { Tensor t = Tensor::empty({3, 1000003}, DType::F32, Device::cuda()); }
  const size_t steady_peak = a.peak_bytes(), steady_mallocs = a.driver_allocations();
  for (int i = 0; i < 5; ++i) {
    Tensor t = Tensor::empty({3, 1000003}, DType::F32, Device::cuda());
    t.fill_(1.f);
  }
  EXPECT_EQ(a.peak_bytes(), steady_peak);
  EXPECT_EQ(a.driver_allocations(), steady_mallocs);
}

TEST(CudaRuntime, OutOfMemorySaysHowMuch) {
  ENGINE_REQUIRE_CUDA();
  const size_t huge = size_t{1} << 50;  // 1 PiB
  const std::string msg = message_of([&] { cuda::device_allocator().allocate(huge); });
  EXPECT_NE(msg.find("out of memory"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(huge)), std::string::npos) << msg;
  EXPECT_NE(msg.find("free of"), std::string::npos) << msg;
  // The failure is not sticky: the next allocation and kernel work.
  Tensor t = Tensor::full({31}, 2.f, Device::cuda());
  EXPECT_EQ(t.to_vector(), std::vector<float>(31, 2.f));
}

TEST(CudaRuntime, CopiesAndZeroRoundTrip) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t n : testing::test_sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    Tensor x = testing::random_cpu(n, 40);
    Tensor d = x.to(Device::cuda());           // host -> device
    Tensor d2 = d.clone();                     // device -> device
    EXPECT_EQ(d2.to_vector(), x.to_vector());  // device -> host, exact
    d.zero_();
    EXPECT_EQ(d.to_vector(), std::vector<float>(n, 0.f));
    EXPECT_EQ(d2.to(Device::cpu()).to_vector(), x.to_vector());
  }
}

TEST(CudaRuntime, MixedDevicesThrowNamingBoth) {
  ENGINE_REQUIRE_CUDA();
  Tensor a = Tensor::full({2, 3}, 1.f, Device::cuda());
  Tensor b = Tensor::full({2, 3}, 1.f);
  const std::string msg = message_of([&] { add(a, b); });
  EXPECT_NE(msg.find("add"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cpu"), std::string::npos) << msg;
}

// An op whose slot the chosen backend leaves empty: one error naming the op, the backend and the
// device, never a crash or a silent fallback. (No shipped backend lacks a slot for CUDA tensors,
// so the test empties one for its duration.)
TEST(CudaRuntime, MissingKernelNamesOpBackendAndDevice) {
  ENGINE_REQUIRE_CUDA();
  KernelTable& table = kernel_table(Backend::Native);
  const auto saved = table.add;
  Tensor a = Tensor::full({3}, 1.f, Device::cuda()), b = Tensor::full({3}, 2.f, Device::cuda());
  std::string msg;
  {
    BackendScope scope(Backend::Native);
    table.add = nullptr;
    msg = message_of([&] { add(a, b); });
    table.add = saved;
  }
  EXPECT_NE(msg.find("add"), std::string::npos) << msg;
  EXPECT_NE(msg.find("backend native has no kernel"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  EXPECT_EQ(add(a, b).to_vector(), std::vector<float>(3, 3.f));  // restored
}

}  // namespace
}  // namespace engine
