// The background checkpoint writer (tools/lib/checkpoint_writer.h): files in the order queued,
// host tensors queued without a copy, best.safetensors as a hard link that a
// later rewrite of the original leaves alone, and a failure reported by wait() with the file's
// name and nothing written after it. The trainer's use of it is covered by the resume and
// kill-during-write tests in test_tools.cpp.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "engine/error.h"
#include "tests/tool_testing.h"
#include "tools/lib/checkpoint_writer.h"

namespace {

using tool_testing::TempDir;

std::vector<float> read_x(const std::string& path) {
  return engine::load_tensors(path).at("x").to_vector();
}

ino_t inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

TEST(CheckpointWriter, WritesHostTensorsWithoutCopies) {
  engine::Tensor t = engine::Tensor::from_vector({3}, {1, 2, 3});
  EXPECT_EQ(app::for_writer(t).raw_data(), t.raw_data());
  TempDir d;
  app::CheckpointWriter w;
  w.save(d / "a.safetensors", app::for_writer({{"x", t}}), {{"k", "v"}});
  w.wait();  // as the trainer does before the next step changes the tensors
  t.fill_(9.f);
  EXPECT_EQ(read_x(d / "a.safetensors"), (std::vector<float>{1, 2, 3}));
  engine::Metadata meta;
  engine::load_tensors(d / "a.safetensors", &meta);
  EXPECT_EQ(meta.at("k"), "v");
  EXPECT_EQ(w.files_written(), 1);
}

TEST(CheckpointWriter, LinkedFileKeepsItsBytesWhenTheOriginalIsRewritten) {
  TempDir d;
  app::CheckpointWriter w;
  engine::TensorMap one = {{"x", engine::Tensor::from_vector({2}, {1, 1})}};
  engine::TensorMap two = {{"x", engine::Tensor::from_vector({2}, {2, 2})}};
  w.save(d / "last.safetensors", one, {});
  w.save_as_link(d / "best.safetensors", d / "last.safetensors", one, {});
  w.wait();
  EXPECT_EQ(inode(d / "best.safetensors"), inode(d / "last.safetensors"));
  EXPECT_EQ(w.files_linked(), 1);
  w.save(d / "last.safetensors", two, {});  // a later epoch that is not the best
  w.wait();
  EXPECT_EQ(read_x(d / "last.safetensors"), (std::vector<float>{2, 2}));
  EXPECT_EQ(read_x(d / "best.safetensors"), (std::vector<float>{1, 1}));
  EXPECT_EQ(w.files_written(), 3);
  for (const auto& e : std::filesystem::directory_iterator(d.str()))
    EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(CheckpointWriter, AFailureIsReportedWithTheFileAndStopsTheQueue) {
  TempDir d;
  app::CheckpointWriter w;
  engine::TensorMap x = {{"x", engine::Tensor::from_vector({1}, {1})}};
  const std::string bad = d / "missing_folder/last.safetensors";
  w.save(bad, x, {});
  w.save(d / "state.safetensors", x, {});  // must not claim an epoch whose weights are missing
  try {
    w.wait();
    FAIL() << "wait() did not report the failed write";
  } catch (const engine::Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  EXPECT_THROW(w.check(), engine::Error);
  w.save(d / "later.safetensors", x, {});
  EXPECT_THROW(w.wait(), engine::Error);
  EXPECT_FALSE(std::filesystem::exists(d / "state.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(d / "later.safetensors"));
  EXPECT_EQ(w.files_written(), 0);
}

}  // namespace
