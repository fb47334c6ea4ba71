// The command-line programs, run as a user runs them: train -> predict -> evaluate on a small
// synthetic dataset; resume after an interruption (simulated, a real SIGINT, and in the middle of
// the schedule's 50-batch window) is bit-identical to an uninterrupted run; a process killed in the
// middle of a checkpoint write leaves the previous checkpoint loadable; a NaN loss stops training;
// predict on a PyTorch-written checkpoint agrees with PyTorch; every bad flag or input is one error
// line and a non-zero exit.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "data/synthetic.h"
#include "engine/safetensors.h"
#include "testing.h"
#include "tool_testing.h"
#include "tools/lib/model_io.h"

namespace {

namespace fs = std::filesystem;
using namespace tool_testing;

// One small synthetic dataset for the whole file: 6 classes, 64x64 JPEGs.
const std::string& dataset() { return small_dataset(); }

// Quick settings: a quarter-width model on 32x32 inputs, 2 compute threads.
std::vector<std::string> train_args(const std::string& out, int epochs,
                                    std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--train-dir",
                                dataset() + "/seg_train",
                                "--test-dir",
                                dataset() + "/seg_test",
                                "--out",
                                out,
                                "--epochs",
                                std::to_string(epochs),
                                "--width",
                                "0.25",
                                "--image-size",
                                "32",
                                "--threads",
                                "2",
                                "--no-plot",
                                "--seed",
                                "5"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// metrics.csv without the two timing columns, which no two runs share.
std::string metrics_without_timing(const std::string& run_dir) {
  std::istringstream in(slurp(run_dir + "/metrics.csv"));
  std::string line, out;
  while (std::getline(in, line)) {
    std::string kept;
    std::istringstream cols(line);
    std::string c;
    for (int i = 0; i < 6 && std::getline(cols, c, ','); ++i) kept += (i ? "," : "") + c;
    out += kept + "\n";
  }
  return out;
}

// The epoch history in the training state (full double precision).
std::string state_history(const std::string& run_dir) {
  auto f = engine::safetensors::read_file(run_dir + "/last.state.safetensors");
  nlohmann::json h = nlohmann::json::parse(f.metadata.at("history"));
  for (auto& row : h) row.erase("epoch_seconds"), row.erase("images_per_second");
  return h.dump();
}

TEST(Tools, TrainPredictEvaluateRoundTrip) {
  TempDir d;
  ToolRun t = run("train", train_args(d / "run", 6, {"--lr", "0.0003"}));
  ASSERT_EQ(t.rc, 0) << t.out << t.err;
  EXPECT_NE(t.out.find("done: 6 epochs"), std::string::npos) << t.out;
  for (const char* f : {"metrics.csv", "last.safetensors", "best.safetensors",
                        "last.state.safetensors", "config.json"}) {
    EXPECT_TRUE(fs::exists(d / ("run/" + std::string(f)))) << f;
  }
  std::string csv = slurp(d / "run/metrics.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "epoch,lr,train_loss,train_acc,test_loss,test_acc,epoch_seconds,images_per_second");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);

  // The weights file carries what predict needs, and nothing but state_dict keys.
  engine::Metadata meta;
  engine::TensorMap w = engine::load_tensors(d / "run/best.safetensors", &meta);
  EXPECT_EQ(meta.at("model"), "simple");
  EXPECT_EQ(meta.at("classes"), nlohmann::json(data::kSceneClasses).dump());
  EXPECT_EQ(meta.at("image_size"), "32");
  for (auto& [k, v] : w) EXPECT_EQ(k.rfind("seq", 0) == 0 || k.rfind("fc", 0) == 0, true) << k;

  ToolRun e = run("evaluate", {"--checkpoint", d / "run/best.safetensors", "--data",
                               dataset() + "/seg_test", "--json", d / "eval.json"});
  ASSERT_EQ(e.rc, 0) << e.err;
  nlohmann::json ev = nlohmann::json::parse(slurp(d / "eval.json"));
  for (const char* k : {"accuracy", "per_class", "confusion_matrix", "classes"}) {
    EXPECT_TRUE(ev.contains(k)) << k;
  }
  // Synthetic scenes are easy: a quarter-width CNN gets most of them within 6 epochs (measured
  // here: 1.0 from epoch 5).
  EXPECT_GE(ev["accuracy"].get<double>(), 0.8) << e.out;
  int64_t total = 0;
  for (auto& row : ev["confusion_matrix"])
    for (auto& v : row) total += v.get<int64_t>();
  EXPECT_EQ(total, 30);
  EXPECT_EQ(ev["per_class"]["forest"]["support"], 5);
  // evaluate's accuracy of best.safetensors is the best test accuracy train recorded.
  double best = 0;
  std::string best_epoch;
  std::istringstream rows(csv);
  std::string line;
  std::getline(rows, line);
  while (std::getline(rows, line)) {
    std::vector<std::string> c;
    std::istringstream cols(line);
    for (std::string x; std::getline(cols, x, ',');) c.push_back(x);
    if (std::stod(c[5]) > best) best = std::stod(c[5]), best_epoch = c[0];
  }
  EXPECT_NEAR(ev["accuracy"].get<double>(), best, 1e-6);
  // best.safetensors is the file of the first epoch with that accuracy (written as a hard link
  // to that epoch's last.safetensors, which the later epochs replaced), last that of epoch 6.
  EXPECT_EQ(meta.at("epoch"), best_epoch);
  engine::Metadata last_meta;
  engine::load_tensors(d / "run/last.safetensors", &last_meta);
  EXPECT_EQ(last_meta.at("epoch"), "6");

  ToolRun p = run("predict", {"--checkpoint", d / "run/best.safetensors", "--images",
                              dataset() + "/seg_pred", "--output", d / "pred.csv"});
  ASSERT_EQ(p.rc, 0) << p.err;
  std::istringstream pred(slurp(d / "pred.csv"));
  std::getline(pred, line);
  EXPECT_EQ(line, "path,label,confidence,buildings,forest,glacier,mountain,sea,street");
  std::vector<std::string> paths;
  while (std::getline(pred, line)) {
    std::vector<std::string> c;
    std::istringstream cols(line);
    for (std::string x; std::getline(cols, x, ',');) c.push_back(x);
    ASSERT_EQ(c.size(), 9u) << line;
    paths.push_back(c[0]);
    double sum = 0, top = 0;
    for (int k = 3; k < 9; ++k) sum += std::stod(c[k]), top = std::max(top, std::stod(c[k]));
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_DOUBLE_EQ(std::stod(c[2]), top);
  }
  EXPECT_EQ(paths.size(), 7u);
  EXPECT_TRUE(std::is_sorted(paths.begin(), paths.end()));
}

TEST(Tools, ResumeAfterInterruptionIsBitIdentical) {
  TempDir d;
  // bn_dropout with augmentation: dropout masks and crops must continue where they stopped.
  const std::vector<std::string> extra = {"--model", "bn_dropout", "--augment", "--lr", "0.001"};
  ToolRun full = run("train", train_args(d / "full", 3, extra));
  ASSERT_EQ(full.rc, 0) << full.err;
  // Interrupted in the middle of epoch 2 (9 batches per epoch), then resumed.
  ToolRun part = run("train", train_args(d / "part", 3,
                                         {extra[0], extra[1], extra[2], extra[3], extra[4],
                                          "--stop-after-steps", "13"}));
  EXPECT_EQ(part.rc, 130);
  EXPECT_NE(part.out.find("resume with: train --out " + (d / "part") + " --resume"),
            std::string::npos)
      << part.out;
  ToolRun resumed = run("train", {"--out", d / "part", "--resume", "--no-plot"});
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming"), std::string::npos);
  EXPECT_EQ(metrics_without_timing(d / "full"), metrics_without_timing(d / "part"));
  EXPECT_EQ(state_history(d / "full"), state_history(d / "part"));
  EXPECT_TRUE(slurp(d / "full/last.safetensors") == slurp(d / "part/last.safetensors"))
      << "weights differ after resume";
  EXPECT_TRUE(slurp(d / "full/best.safetensors") == slurp(d / "part/best.safetensors"));
  // Resuming a finished run does nothing; more epochs continue it.
  ToolRun again = run("train", {"--out", d / "part", "--resume", "--no-plot"});
  EXPECT_EQ(again.rc, 0);
  EXPECT_NE(again.out.find("nothing to do"), std::string::npos) << again.out;
  // Settings that shape the results cannot change on resume.
  ToolRun changed = run("train", {"--out", d / "part", "--resume", "--lr", "0.5"});
  EXPECT_EQ(changed.rc, 1);
  EXPECT_NE(changed.err.find("--lr 0.5 differs from the run being resumed"), std::string::npos)
      << changed.err;
}

// The metadata of a run's training state.
engine::Metadata state_meta(const std::string& run_dir) {
  return engine::safetensors::read_file(run_dir + "/last.state.safetensors").metadata;
}

// A real Ctrl-C: the handler lets the step finish, saves, says how to resume and exits 130, and
// the resumed run matches an uninterrupted one. The run is asked for far more epochs than can
// pass before the signal, so the signal certainly arrives mid-run; if the handler is missing the
// process dies of the signal, and if it ignores the signal the run is killed after the limit:
// both fail.
TEST(Tools, RealSigintCheckpointsAndResumesBitIdentically) {
  TempDir d;
  const std::string log = d / "sig";
  pid_t pid = spawn("train", train_args(d / "part", 100000), log);
  // The first progress line comes after the first step, so the handlers are installed by then.
  if (!wait_for_text(log, "epoch 1/100000", 600)) {
    kill(pid, SIGKILL);
    ToolRun r = wait_for(pid, log);
    FAIL() << "training did not start within 600 s\n" << r.out << r.err;
  }
  kill(pid, SIGINT);
  ToolRun r = wait_for(pid, log, 600);
  ASSERT_FALSE(r.timed_out) << "the run went on for 600 s after SIGINT\n" << r.out << r.err;
  ASSERT_EQ(r.signal, 0) << "killed by signal " << r.signal << ": no handler caught it\n" << r.err;
  EXPECT_EQ(r.rc, 130) << r.out << r.err;
  EXPECT_NE(r.err.find("train: stopping after this step and saving a checkpoint"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("resume with: train --out " + (d / "part") + " --resume"), std::string::npos)
      << r.out;
  // Resume to the end of the epoch it was in (or one more, if it stopped between epochs), and
  // compare with a run of that many epochs.
  const engine::Metadata meta = state_meta(d / "part");
  const int64_t epoch = std::stoll(meta.at("epoch")), batch = std::stoll(meta.at("batch"));
  ASSERT_LT(epoch, 1000) << "the state says epoch " << epoch << ", batch " << batch;
  const std::string total = std::to_string(epoch + 1);
  ToolRun resumed = run("train", {"--out", d / "part", "--resume", "--epochs", total, "--no-plot"});
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  ToolRun full = run("train", train_args(d / "full", int(epoch + 1)));
  ASSERT_EQ(full.rc, 0) << full.err;
  EXPECT_EQ(metrics_without_timing(d / "full"), metrics_without_timing(d / "part"));
  EXPECT_TRUE(slurp(d / "full/last.safetensors") == slurp(d / "part/last.safetensors"));
}

// The default schedule steps every 50 batches on their mean loss, the windows restarting each
// epoch (engine::WindowedPlateau). With one image a batch an epoch is 72 batches: one window, and
// 22 batches dropped. A run interrupted in the middle of a window and resumed closes that window
// with the batches from before the interruption: its schedule state after the epoch is the one
// of a run that was not interrupted in it (a lost sum gives another best, a lost count no step),
// and so are its metrics and weights after a second interruption in epoch 2's window.
TEST(Tools, ResumeInTheMiddleOfAScheduleWindowIsBitIdentical) {
  TempDir d;
  auto with = [&](std::vector<std::string> a, std::vector<std::string> more) {
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  // One compute thread (resumed runs keep it): batches of one image are too small to share, and
  // two OpenMP threads on a busy 2-core machine made an epoch 20.6 s instead of 2.4 s.
  auto start = [&](const std::string& dir, std::vector<std::string> more) {
    std::vector<std::string> a =
        train_args(dir, 1, with({"--batch-size", "1", "--lr", "0.001"}, more));
    *(std::find(a.begin(), a.end(), "--threads") + 1) = "1";
    return run("train", a);
  };
  auto resume = [&](const std::string& dir, std::vector<std::string> more) {
    return run("train", with({"--out", dir, "--resume", "--no-plot"}, more));
  };
  // The reference stops only between epochs, where the window is empty.
  ASSERT_EQ(start(d / "ref", {}).rc, 0);
  // Interrupted after batch 30 of 72, then finishing the epoch.
  ToolRun part = start(d / "part", {"--stop-after-steps", "30"});
  ASSERT_EQ(part.rc, 130) << part.out << part.err;
  nlohmann::json sched = nlohmann::json::parse(state_meta(d / "part").at("scheduler"));
  EXPECT_EQ(sched.at("type"), "WindowedPlateau");
  EXPECT_EQ(sched.at("count"), 30);
  EXPECT_EQ(sched.at("window"), 50);
  ASSERT_EQ(resume(d / "part", {}).rc, 0);
  sched = nlohmann::json::parse(state_meta(d / "part").at("scheduler"));
  EXPECT_EQ(sched.at("plateau").at("last_epoch"), 1) << sched;  // one window in the epoch
  EXPECT_EQ(state_meta(d / "ref").at("scheduler"), state_meta(d / "part").at("scheduler"));

  // Epoch 2: the reference straight through, the other interrupted after batch 30 again.
  ASSERT_EQ(resume(d / "ref", {"--epochs", "2"}).rc, 0);
  ToolRun second = resume(d / "part", {"--epochs", "2", "--stop-after-steps", "30"});
  ASSERT_EQ(second.rc, 130) << second.out << second.err;
  ASSERT_EQ(resume(d / "part", {}).rc, 0);
  EXPECT_EQ(state_meta(d / "ref").at("scheduler"), state_meta(d / "part").at("scheduler"));
  EXPECT_EQ(metrics_without_timing(d / "ref"), metrics_without_timing(d / "part"));
  EXPECT_EQ(state_history(d / "ref"), state_history(d / "part"));
  EXPECT_TRUE(slurp(d / "ref/last.safetensors") == slurp(d / "part/last.safetensors"));
}

// A state file written before the batch-window schedule (format 1) resumes with the per-epoch
// plateau schedule its "plateau" meant, and is written back in format 2.
TEST(Tools, ResumesAFormatOneStateWithItsPerEpochPlateau) {
  TempDir d;
  ASSERT_EQ(run("train", train_args(d / "run", 1, {"--scheduler", "plateau-epoch"})).rc, 0);
  const std::string path = d / "run/last.state.safetensors";
  engine::Metadata meta;
  engine::TensorMap tensors = engine::load_tensors(path, &meta);
  ASSERT_EQ(meta.at("format"), "engine-train-state-2");
  nlohmann::json config = nlohmann::json::parse(meta.at("config"));
  config["scheduler"] = "plateau";
  meta["config"] = config.dump();
  meta["format"] = "engine-train-state-1";
  engine::save_tensors(path, tensors, meta);
  ToolRun resumed = run("train", {"--out", d / "run", "--resume", "--epochs", "2", "--no-plot"});
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("done: 2 epochs"), std::string::npos) << resumed.out;
  meta = state_meta(d / "run");
  EXPECT_EQ(meta.at("format"), "engine-train-state-2");
  EXPECT_EQ(nlohmann::json::parse(meta.at("config")).at("scheduler"), "plateau-epoch");
  EXPECT_EQ(nlohmann::json::parse(meta.at("scheduler")).at("type"), "ReduceLROnPlateau");
}

TEST(Tools, KilledDuringCheckpointWriteKeepsThePreviousCheckpoint) {
  TempDir d;
  ToolRun first = run("train", train_args(d / "run", 1));
  ASSERT_EQ(first.rc, 0) << first.err;
  const std::string weights = slurp(d / "run/last.safetensors");
  const std::string state = slurp(d / "run/last.state.safetensors");
  // Epoch 2 dies half-way through writing each file in turn (SIGKILL: no handler runs).
  for (const char* target : {"last.safetensors", "last.state.safetensors", "metrics.csv"}) {
    SCOPED_TRACE(target);
    ToolRun killed = run("train", {"--out", d / "run", "--resume", "--epochs", "2", "--no-plot"},
                         {{"ENGINE_FAULT_KILL_IN_WRITE", target}});
    EXPECT_EQ(killed.rc, 128 + SIGKILL);
    // The state still says epoch 1 unless its own write completed before the kill.
    EXPECT_NO_THROW(app::load_weights(d / "run/last.safetensors"));
    EXPECT_NO_THROW(engine::safetensors::read_file(d / "run/last.state.safetensors"));
    EXPECT_TRUE(slurp(d / "run/last.state.safetensors") == state) << "state changed";
  }
  // The weights of epoch 1 are intact when their rewrite was killed.
  EXPECT_TRUE(slurp(d / "run/last.safetensors") == weights ||
              app::load_weights(d / "run/last.safetensors").info.model == "simple");
  // And the run goes on from there.
  ToolRun resumed = run("train", {"--out", d / "run", "--resume", "--epochs", "2", "--no-plot"});
  EXPECT_EQ(resumed.rc, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("done: 2 epochs"), std::string::npos) << resumed.out;
}

TEST(Tools, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  TempDir d;
  ToolRun first = run("train", train_args(d / "run", 1));
  ASSERT_EQ(first.rc, 0) << first.err;
  const std::string weights = slurp(d / "run/last.safetensors");
  // Global step 12 is batch 4 of epoch 2 (9 batches per epoch).
  ToolRun nan = run("train", {"--out", d / "run", "--resume", "--epochs", "3", "--nan-at-step",
                              "12", "--no-plot"});
  EXPECT_EQ(nan.rc, 3);
  EXPECT_NE(nan.err.find("the loss is nan at epoch 2, step 4 of 9"), std::string::npos) << nan.err;
  EXPECT_NE(nan.err.find("last good checkpoint is " + (d / "run/last.safetensors") + " (epoch 1)"),
            std::string::npos)
      << nan.err;
  EXPECT_TRUE(slurp(d / "run/last.safetensors") == weights);
  const std::string csv = slurp(d / "run/metrics.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 2) << csv;
}

// predict on a checkpoint written by PyTorch (tests/py/fx_predict.py) gives PyTorch's labels and
// probabilities: 6 decimals in the CSV, so 1e-4 leaves room only for float rounding.
TEST(Tools, PredictMatchesPyTorchOnItsCheckpoint) {
  engine::Metadata meta;
  engine::TensorMap ref = engine::testing::load_fixture("predict.safetensors", &meta);
  ASSERT_FALSE(ref.empty());
  auto files = nlohmann::json::parse(meta.at("files"));
  auto probs = engine::testing::get(ref, "probs").to_vector();
  const std::string dir = engine::testing::fixture_path("predict");
  ToolRun p =
      run("predict", {"--checkpoint", dir + "/model.safetensors", "--images", dir + "/images"});
  ASSERT_EQ(p.rc, 0) << p.err;
  std::istringstream in(p.out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "path,label,confidence,cat,dog,owl");
  const char* classes[] = {"cat", "dog", "owl"};
  size_t i = 0;
  double worst = 0;
  std::set<std::string> labels;
  for (; std::getline(in, line); ++i) {
    std::vector<std::string> c;
    std::istringstream cols(line);
    for (std::string x; std::getline(cols, x, ',');) c.push_back(x);
    ASSERT_EQ(c.size(), 6u);
    ASSERT_LT(i, files.size());
    EXPECT_EQ(fs::path(c[0]).filename().string(), files[i].get<std::string>());
    int best = 0;
    for (int k = 0; k < 3; ++k) {
      worst = std::max(worst, std::abs(std::stod(c[3 + k]) - probs[i * 3 + k]));
      if (probs[i * 3 + k] > probs[i * 3 + best]) best = k;
    }
    EXPECT_EQ(c[1], classes[best]);
    labels.insert(c[1]);
  }
  EXPECT_EQ(i, files.size());
  EXPECT_LE(worst, 1e-4);
  EXPECT_GE(labels.size(), 2u) << "the fixture should exercise more than one label";
}

// Every mistake a user can make: one line on stderr naming it, a non-zero exit, nothing written.
TEST(Tools, BadFlagsAndInputsGiveOneClearLine) {
  TempDir d;
  ToolRun made = run("train", train_args(d / "done", 1));
  ASSERT_EQ(made.rc, 0) << made.err;
  std::ofstream(d / "text.safetensors") << "not a checkpoint";
  fs::create_directories(d / "other/a");
  fs::create_directories(d / "other/b");
  fs::copy_file(dataset() + "/seg_pred/seg_pred/0000.jpg", d / "other/a/x.jpg");
  fs::copy_file(dataset() + "/seg_pred/seg_pred/0001.jpg", d / "other/b/y.jpg");
  const std::string tr = dataset() + "/seg_train", te = dataset() + "/seg_test";
  struct Case {
    std::string tool;
    std::vector<std::string> args;
    std::string words;
  };
  const std::vector<Case> cases = {
      {"train", {"--test-dir", te}, "--train-dir is required"},
      {"train", {"--train-dir", d / "nope", "--test-dir", te}, "nope' does not exist"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--model", "resnet"}, "--model resnet"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--epochs", "0"}, "--epochs 0"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--epochs", "two"}, "--epochs"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--image-size", "60"}, "multiple of 8"},
      {"train",
       {"--train-dir", tr, "--test-dir", te, "--image-size", "1024", "--width", "4"},
       "quarter of this machine's"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--lr", "-1"}, "--lr -1"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--device", "tpu"}, "--device tpu"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--optimizer", "lbfgs"}, "--optimizer lbfgs"},
      {"train", {"--train-dir", tr, "--test-dir", d / "other"}, "different classes"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--seed", "-3"}, "must not be negative"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--frobnicate"}, "frobnicate"},
      {"train", {"--train-dir", tr, "--test-dir", te, "--cache-mb", "-2"}, "--cache-mb -2"},
      {"train", {"--out", d / "empty", "--resume"}, "holds no training state"},
      {"train", train_args(d / "done", 1), "already holds a training run"},
      {"predict", {"--images", dataset() + "/seg_pred"}, "--checkpoint is required"},
      {"predict", {"--checkpoint", d / "missing.safetensors", "--images", te}, "does not exist"},
      {"predict", {"--checkpoint", d / "text.safetensors", "--images", te}, "text.safetensors"},
      {"predict",
       {"--checkpoint", d / "done/last.safetensors", "--images", d / "nope"},
       "nope' does not exist"},
      {"predict",
       {"--checkpoint", d / "done/last.state.safetensors", "--images", te},
       "no 'model'"},
      {"predict",
       {"--checkpoint", d / "done/last.safetensors", "--images", te, "--batch-size", "0"},
       "--batch-size 0"},
      {"evaluate",
       {"--checkpoint", d / "done/last.safetensors", "--data", d / "other"},
       "differ from the checkpoint's"},
      {"evaluate",
       {"--checkpoint", d / "done/last.safetensors", "--data", te, "--backend", "x"},
       "--backend x"},
  };
  for (const Case& c : cases) {
    std::string cmd = c.tool;
    for (const auto& a : c.args) cmd += " " + a;
    SCOPED_TRACE(cmd);
    ToolRun r = run(c.tool, c.args);
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind(c.tool + ": ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.words), std::string::npos) << r.err;
  }
  // A checkpoint whose tensors do not fit its metadata (width changed by hand).
  engine::Metadata meta;
  engine::TensorMap w = engine::load_tensors(d / "done/last.safetensors", &meta);
  meta["width"] = "0.5";
  engine::save_tensors(d / "wrong.safetensors", w, meta);
  ToolRun r = run("predict", {"--checkpoint", d / "wrong.safetensors", "--images", te});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("mis-shaped keys"), std::string::npos) << r.err;
}

TEST(Tools, StrictStopsAtABadImageOtherwiseItIsSkipped) {
  TempDir d;
  fs::copy(dataset() + "/seg_train/seg_train", d / "train", fs::copy_options::recursive);
  std::ofstream(d / "train/forest/broken.jpg") << "not a jpeg";
  ToolRun skipped = run(
      "train", {"--train-dir", d / "train", "--test-dir", dataset() + "/seg_test", "--out", d / "a",
                "--epochs", "1", "--width", "0.25", "--image-size", "32", "--no-plot"});
  EXPECT_EQ(skipped.rc, 0) << skipped.err;
  EXPECT_NE(
      skipped.err.find("warning: skipping " + (d / "train/forest/broken.jpg") + ": not an image"),
      std::string::npos)
      << skipped.err;
  EXPECT_NE(skipped.out.find("72 images; skipped 1 bad file"), std::string::npos) << skipped.out;
  ToolRun strict = run("train", {"--train-dir", d / "train", "--test-dir", dataset() + "/seg_test",
                                 "--out", d / "b", "--epochs", "1", "--strict", "--no-plot"});
  EXPECT_EQ(strict.rc, 1);
  EXPECT_NE(strict.err.find("broken.jpg: not an image"), std::string::npos) << strict.err;
  EXPECT_NE(strict.err.find("strict"), std::string::npos) << strict.err;
}

}  // namespace
