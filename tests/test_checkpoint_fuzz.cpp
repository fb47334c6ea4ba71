// The checkpoint fuzz target's files as unit tests: every input it found (and the crafted ones
// for the bugs fixed with them) in tests/fuzz/regressions_checkpoint is refused by
// app::load_weights with an engine::Error naming the file and the rule, and the valid seed
// checkpoints in tests/fuzz/corpus_checkpoint still load, so the fuzzer starts from files that
// reach the model build. Also the allocation cap that bounds the loader's memory.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "engine/storage.h"
#include "testing.h"
#include "tools/lib/model_io.h"

namespace {

const std::string kFuzzDir = std::string(ENGINE_SOURCE_DIR) + "/tests/fuzz";

}  // namespace

TEST(CheckpointFuzz, FindingsAreRefused) {
  const std::string dir = kFuzzDir + "/regressions_checkpoint";
  // file -> what the refusal must say
  const std::map<std::string, std::string> expected = {
      // A zero-length header reached memchr as a null pointer (UBSan, read_file only).
      {"safetensors_empty_header", "header is not valid UTF-8 JSON"},
      // Metadata naming a model far larger than the file (1960 bytes of tensors): before the
      // cap, the loader allocated 1.3 GB (image_size) and 73 GB (width) before comparing shapes.
      {"metadata_image_size_65536_in_a_small_file", "is far larger than the 1960 bytes of tensors"},
      {"metadata_width_1000_in_a_small_file", "is far larger than the 1960 bytes of tensors"},
      // "inf" read by stof built a model whose width could not be written back.
      {"metadata_width_inf", "'width' must be a positive finite number"},
      // A JSON string iterated as if it were an array of one name.
      {"metadata_classes_not_an_array", "'classes' must be a JSON array"}};
  for (const auto& [name, words] : expected) {
    SCOPED_TRACE(name);
    const std::string path = dir + "/" + name;
    engine::testing::expect_error([&] { app::load_weights(path); }, {path + ": ", words});
  }
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_TRUE(expected.count(e.path().filename().string())) << e.path();
  }
  EXPECT_EQ(files, expected.size()) << "a regression input without a stated reason";
}

TEST(CheckpointFuzz, ValidSeedCheckpointsLoad) {
  size_t loaded = 0;
  for (const auto& e : std::filesystem::directory_iterator(kFuzzDir + "/corpus_checkpoint")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("valid_", 0) != 0 || name == "valid_every_dtype") continue;
    SCOPED_TRACE(name);
    app::LoadedModel m = app::load_weights(e.path().string());
    EXPECT_FALSE(m.info.classes.empty());
    ++loaded;
  }
  EXPECT_EQ(loaded, 3u);
}

TEST(AllocationCap, RefusesPastTheCapAndRestoresTheOuterOne) {
  engine::AllocationCap outer(1 << 20, "outer");
  {
    engine::AllocationCap inner(64, "inner cap");
    engine::Tensor fits = engine::Tensor::empty({16});  // 64 bytes
    engine::testing::expect_error([] { engine::Tensor::empty({1}); },
                                  {"inner cap", "allocating 4 bytes after 64", "cap of 64"});
  }
  engine::Tensor more = engine::Tensor::empty({1024});  // the outer cap rules again
  engine::testing::expect_error([] { engine::Tensor::empty({1 << 20}); }, {"outer"});
}
