// Optimizers, LR schedules and gradient clipping against PyTorch 1.13 (fixtures from
// tests/py/fx_optim.py and fx_plateau_window.py): parameters after every step to 1e-5 relative,
// schedules' lr sequences to 1e-7 (the batch-window plateau's exactly), clipping to 1e-6; state
// round trips through safetensors/JSON that resume bit-exactly; and the errors bad hyper-parameters
// and bad state raise.
#include <filesystem>
#include <memory>

#include "engine/optim.h"
#include "engine/random.h"
#include "engine/scheduler.h"
#include "tests/testing.h"

namespace engine {
namespace {
using nlohmann::json;
using testing::expect_error;
using testing::get;

constexpr double kParamTol = 1e-5;
// Optimizer state (momentum, square averages) after each step.
constexpr double kStateTol = 1e-5;
constexpr double kLrTol = 1e-7;
constexpr double kClipTol = 1e-6;
constexpr int kNumParams = 3;

double num(const json& c, const char* key, double fallback) {
  return c.contains(key) ? c[key].get<double>() : fallback;
}

// An optimizer from a fixture config ({"type": ..., PyTorch kwargs}); missing kwargs take
// PyTorch's defaults (SGD, which has none for lr, gets 1).
std::unique_ptr<Optimizer> make_optimizer(const json& c, NamedParams params) {
  const std::string type = c["type"];
  const json betas = c.contains("betas") ? c["betas"] : json::array({0.9, 0.999});
  if (type == "SGD") {
    SgdOptions o{num(c, "momentum", 0), num(c, "dampening", 0), num(c, "weight_decay", 0),
                 c.value("nesterov", false)};
    return std::make_unique<SGD>(std::move(params), num(c, "lr", 1.0), o);
  }
  if (type == "RMSprop") {
    RmspropOptions o{num(c, "lr", 1e-2),        num(c, "alpha", 0.99), num(c, "eps", 1e-8),
                     num(c, "weight_decay", 0), num(c, "momentum", 0), c.value("centered", false)};
    return std::make_unique<RMSprop>(std::move(params), o);
  }
  if (type == "Adam") {
    AdamOptions o{num(c, "lr", 1e-3), betas[0].get<double>(), betas[1].get<double>(),
                  num(c, "eps", 1e-8), num(c, "weight_decay", 0)};
    return std::make_unique<Adam>(std::move(params), o);
  }
  if (type == "AdamW") {
    AdamWOptions o{num(c, "lr", 1e-3), betas[0].get<double>(), betas[1].get<double>(),
                   num(c, "eps", 1e-8), num(c, "weight_decay", 1e-2)};
    return std::make_unique<AdamW>(std::move(params), o);
  }
  ADD_FAILURE() << "unknown optimizer type " << type;
  return nullptr;
}

NamedParams fresh_params(const TensorMap& fx) {
  NamedParams params;
  for (int k = 0; k < kNumParams; ++k) {
    const std::string n = "p" + std::to_string(k);
    params.emplace_back(n, get(fx, "init." + n).clone().set_requires_grad(true));
  }
  return params;
}

// Sets the gradients of step s (none where the fixture has none), halves the lr at the drop
// step as the fixture does, and steps.
void do_step(Optimizer& opt, const TensorMap& fx, int s, int lr_drop_step) {
  for (const auto& [n, p] : opt.params()) {
    Tensor param = p;
    param.zero_grad();
    auto it = fx.find("grad." + std::to_string(s) + "." + n);
    if (it != fx.end()) param.set_grad(it->second.clone());
  }
  if (s == lr_drop_step) opt.set_lr(opt.lr() * 0.5);
  opt.step();
}

struct OptimFixture {
  TensorMap fx;
  json configs;
  int steps = 0, lr_drop_step = 0;
};

OptimFixture load_optim_fixture() {
  OptimFixture f;
  Metadata meta;
  f.fx = testing::load_fixture("optim.safetensors", &meta);
  if (f.fx.empty()) return f;
  f.configs = json::parse(meta.at("configs"));
  f.steps = std::stoi(meta.at("steps"));
  f.lr_drop_step = std::stoi(meta.at("lr_drop_step"));
  return f;
}

TEST(ParityOptim, ParametersAndStateMatchPyTorchAfterEveryStep) {
  OptimFixture f = load_optim_fixture();
  ASSERT_FALSE(f.fx.empty());
  for (size_t i = 0; i < f.configs.size(); ++i) {
    SCOPED_TRACE("config " + std::to_string(i) + " " + f.configs[i].dump());
    const std::string pre = "c" + std::to_string(i) + ".";
    auto opt = make_optimizer(f.configs[i], fresh_params(f.fx));
    ASSERT_TRUE(opt);
    EXPECT_EQ(opt->name(), f.configs[i]["type"].get<std::string>());
    for (int s = 0; s < f.steps; ++s) {
      do_step(*opt, f.fx, s, f.lr_drop_step);
      for (const auto& [n, p] : opt->params()) {
        SCOPED_TRACE("step " + std::to_string(s) + " " + n);
        EXPECT_CLOSE(p, get(f.fx, pre + "step" + std::to_string(s) + "." + n), kParamTol);
      }
    }
    // The state tensors carry PyTorch's names and values.
    Metadata meta;
    TensorMap state = opt->state_dict(meta);
    size_t expected = 0;
    for (const auto& [key, ref] : f.fx) {
      if (key.rfind(pre + "state.", 0) != 0) continue;
      ++expected;
      const std::string ours = key.substr(pre.size());
      ASSERT_TRUE(state.count(ours)) << "state_dict lacks " << ours;
      EXPECT_CLOSE(state.at(ours), ref, kStateTol);
    }
    EXPECT_EQ(state.size(), expected);
    // p1 has no gradient on two steps and p2 on one: their step counts lag behind.
    json j = json::parse(meta.at("optimizer"));
    EXPECT_EQ(j["steps"], json({{"p0", f.steps}, {"p1", f.steps - 2}, {"p2", f.steps - 1}}));
  }
}

TEST(OptimResume, StateDictThroughSafetensorsContinuesBitExactly) {
  OptimFixture f = load_optim_fixture();
  ASSERT_FALSE(f.fx.empty());
  const std::string path =
      (std::filesystem::temp_directory_path() / "engine_test_optim_resume.safetensors").string();
  const int stop = 3;
  for (size_t i = 0; i < f.configs.size(); ++i) {
    SCOPED_TRACE("config " + std::to_string(i) + " " + f.configs[i].dump());
    auto whole = make_optimizer(f.configs[i], fresh_params(f.fx));
    for (int s = 0; s < f.steps; ++s) do_step(*whole, f.fx, s, f.lr_drop_step);

    auto first = make_optimizer(f.configs[i], fresh_params(f.fx));
    for (int s = 0; s < stop; ++s) do_step(*first, f.fx, s, f.lr_drop_step);
    Metadata meta;
    TensorMap tensors = first->state_dict(meta);
    NamedParams resumed_params;
    for (const auto& [n, p] : first->params()) {
      tensors.emplace("param." + n, p);
      resumed_params.emplace_back(n, Tensor());
    }
    save_tensors(path, tensors, meta);

    Metadata loaded_meta;
    TensorMap loaded = load_tensors(path, &loaded_meta);
    TensorMap state;
    for (auto& [n, p] : resumed_params) {
      p = loaded.at("param." + n).clone().set_requires_grad(true);
      loaded.erase("param." + n);
    }
    // A fresh optimizer with default hyper-parameters: load_state_dict restores them and the lr.
    auto second = make_optimizer(json{{"type", f.configs[i]["type"]}}, resumed_params);
    second->load_state_dict(loaded, loaded_meta);
    EXPECT_EQ(second->lr(), first->lr());
    for (int s = stop; s < f.steps; ++s) do_step(*second, f.fx, s, f.lr_drop_step);

    for (int k = 0; k < kNumParams; ++k) {
      EXPECT_EQ(second->params()[k].second.to_vector(), whole->params()[k].second.to_vector())
          << "parameter p" << k << " differs after resuming";
    }
    Metadata m1, m2;
    TensorMap s1 = whole->state_dict(m1), s2 = second->state_dict(m2);
    EXPECT_EQ(m1, m2);
    ASSERT_EQ(s1.size(), s2.size());
    for (const auto& [key, t] : s1) {
      EXPECT_EQ(t.to_vector(), s2.at(key).to_vector()) << key;
    }
  }
  std::filesystem::remove(path);
}

TEST(OptimStep, SkipsFrozenParametersAndMissingGradients) {
  Tensor a = Tensor::from_vector({3}, {1, 2, 3}).set_requires_grad(true);
  Tensor frozen = Tensor::from_vector({2}, {4, 5});
  Tensor no_grad = Tensor::from_vector({2}, {6, 7}).set_requires_grad(true);
  a.set_grad(Tensor::full({3}, 1.f));
  frozen.set_grad(Tensor::full({2}, 1.f));  // a stale gradient on a frozen tensor: not applied
  Adam opt({{"a", a}, {"frozen", frozen}, {"no_grad", no_grad}}, {.lr = 0.1});
  opt.step();
  EXPECT_EQ(frozen.to_vector(), (std::vector<float>{4, 5}));
  EXPECT_EQ(no_grad.to_vector(), (std::vector<float>{6, 7}));
  EXPECT_NE(a.to_vector(), (std::vector<float>{1, 2, 3}));
  Metadata meta;
  TensorMap state = opt.state_dict(meta);
  EXPECT_EQ(state.size(), 2u);  // exp_avg and exp_avg_sq of "a" only
  EXPECT_TRUE(state.count("state.a.exp_avg"));
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(frozen.grad().defined());
}

// Above kParallelGrain elements the kernels run under OpenMP; element-wise updates must give
// the same bits as the serial loop, whatever the thread count.
TEST(OptimStep, LargeTensorsMatchTheSerialPathBitExactly) {
  const int64_t n = 100003, chunk = 1000;
  const json configs[] = {{{"type", "SGD"}, {"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}},
                          {{"type", "RMSprop"}, {"centered", true}, {"momentum", 0.5}},
                          {{"type", "AdamW"}}};
  Generator gen(3);
  const Tensor init = Tensor::randn({n}, gen), grad = Tensor::randn({n}, gen);
  const std::vector<float> init_v = init.to_vector(), grad_v = grad.to_vector();
  for (const json& c : configs) {
    SCOPED_TRACE(c.dump());
    auto big = make_optimizer(c, {{"w", init.clone().set_requires_grad(true)}});
    NamedParams pieces;
    for (int64_t b = 0; b < n; b += chunk) {
      const int64_t len = std::min(chunk, n - b);
      std::vector<float> v(init_v.begin() + b, init_v.begin() + b + len);
      pieces.emplace_back("w" + std::to_string(b), Tensor::from_vector({len}, v));
      pieces.back().second.set_requires_grad(true);
    }
    auto small = make_optimizer(c, pieces);
    for (int s = 0; s < 3; ++s) {
      Tensor w = big->params()[0].second;
      w.set_grad(grad.clone());
      for (const auto& [name, p] : small->params()) {
        const int64_t b = std::stoll(name.substr(1));
        std::vector<float> g(grad_v.begin() + b, grad_v.begin() + b + p.numel());
        Tensor(p).set_grad(Tensor::from_vector(p.shape(), g));
      }
      big->step();
      small->step();
    }
    std::vector<float> joined;
    for (const auto& [name, p] : small->params()) {
      auto v = p.to_vector();
      joined.insert(joined.end(), v.begin(), v.end());
    }
    EXPECT_EQ(big->params()[0].second.to_vector(), joined);
  }
}

TEST(OptimErrors, BadHyperParametersThrowNamingOptimizerAndValue) {
  auto params = [] { return NamedParams{{"w", Tensor::zeros({2}).set_requires_grad(true)}}; };
  expect_error([&] { SGD(params(), -0.5); }, {"SGD", "learning rate", "-0.5"});
  expect_error([&] { SGD(params(), 0.1, {.momentum = -0.9}); }, {"SGD", "momentum", "-0.9"});
  expect_error([&] { SGD(params(), 0.1, {.weight_decay = -1}); }, {"SGD", "weight_decay", "-1"});
  expect_error([&] { SGD(params(), 0.1, {.nesterov = true}); }, {"SGD", "Nesterov"});
  expect_error([&] { SGD(params(), 0.1, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
               {"SGD", "Nesterov", "0.1"});
  expect_error([&] { RMSprop(params(), {.alpha = 1.0}); }, {"RMSprop", "alpha", "1"});
  expect_error([&] { RMSprop(params(), {.alpha = -0.25}); }, {"RMSprop", "alpha", "-0.25"});
  expect_error([&] { RMSprop(params(), {.eps = -1e-8}); }, {"RMSprop", "eps", "-1e-08"});
  expect_error([&] { RMSprop(params(), {.lr = -2}); }, {"RMSprop", "learning rate", "-2"});
  expect_error([&] { Adam(params(), {.beta1 = 1.0}); }, {"Adam", "beta1", "1"});
  expect_error([&] { Adam(params(), {.beta2 = -0.5}); }, {"Adam", "beta2", "-0.5"});
  expect_error([&] { Adam(params(), {.eps = -3}); }, {"Adam", "eps", "-3"});
  expect_error([&] { AdamW(params(), {.weight_decay = -0.01}); },
               {"AdamW", "weight_decay", "-0.01"});
  expect_error([&] { AdamW(params(), {.beta1 = 1.5}); }, {"AdamW", "beta1", "1.5"});
  SGD ok(params(), 0.1);
  expect_error([&] { ok.set_lr(-3); }, {"SGD", "learning rate", "-3"});
  EXPECT_EQ(ok.lr(), 0.1);
  expect_error([&] { SGD(NamedParams{}, 0.1); }, {"SGD", "empty parameter list"});
  expect_error(
      [&] {
        SGD(NamedParams{{"w", Tensor::zeros({1})}, {"w", Tensor::zeros({1})}}, 0.1);
      },
      {"SGD", "'w'", "twice"});
  expect_error([&] { clip_grad_norm(params(), -1); }, {"clip_grad_norm", "-1"});
}

TEST(OptimErrors, LoadStateDictListsEveryBadEntryAndChangesNothing) {
  Tensor w = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6}).set_requires_grad(true);
  Tensor b = Tensor::from_vector({3}, {1, 2, 3}).set_requires_grad(true);
  Adam src({{"w", w}, {"b", b}}, {.lr = 0.01});
  w.set_grad(Tensor::full({2, 3}, 0.5f));
  b.set_grad(Tensor::full({3}, -0.5f));
  src.step();
  Metadata meta;
  TensorMap good = src.state_dict(meta);

  Tensor w2 = w.clone().set_requires_grad(true), b2 = b.clone().set_requires_grad(true);
  Adam dst({{"w", w2}, {"b", b2}}, {.lr = 0.5, .beta1 = 0.5});
  TensorMap bad = good;
  bad.erase("state.w.exp_avg");
  bad["state.b.exp_avg_sq"] = Tensor::zeros({4});
  bad["state.c.exp_avg"] = Tensor::zeros({3});
  expect_error([&] { dst.load_state_dict(bad, meta); },
               {"Adam.load_state_dict", "missing state.w.exp_avg", "state.b.exp_avg_sq", "[4]",
                "[3]", "unexpected state.c.exp_avg"});
  EXPECT_EQ(dst.lr(), 0.5);
  EXPECT_EQ(dst.options().beta1, 0.5);

  Metadata unknown = meta;
  json j = json::parse(meta.at("optimizer"));
  j["steps"]["v"] = 1;
  unknown["optimizer"] = j.dump();
  expect_error([&] { dst.load_state_dict(good, unknown); }, {"unknown parameter 'v'"});

  SGD sgd({{"w", w2}}, 0.1);
  expect_error([&] { sgd.load_state_dict(good, meta); }, {"SGD.load_state_dict", "Adam"});
  expect_error([&] { sgd.load_state_dict(good, Metadata{}); }, {"SGD", "'optimizer'"});

  dst.load_state_dict(good, meta);
  EXPECT_EQ(dst.lr(), 0.01);
  EXPECT_EQ(dst.options().beta1, 0.9);
}

TEST(ParityClipGradNorm, MatchesTorchClipGradNorm) {
  Metadata meta;
  TensorMap fx = testing::load_fixture("clip.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = json::parse(meta.at("cases"));
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("clip case " + std::to_string(i));
    const std::string pre = "c" + std::to_string(i) + ".";
    NamedParams params;
    for (int k = 0; k < kNumParams; ++k) {
      const std::string n = "p" + std::to_string(k);
      auto it = fx.find(pre + "before." + n);
      Tensor param;
      if (it != fx.end()) {
        param = Tensor::zeros(it->second.shape()).set_requires_grad(true);
        param.set_grad(it->second.clone());
      } else {
        param = Tensor::zeros({1}).set_requires_grad(true);
      }
      params.emplace_back(n, param);
    }
    const double total = clip_grad_norm(params, cases[i]["max_norm"].get<double>());
    const double ref = cases[i]["total"].get<double>();
    EXPECT_NEAR(total, ref, kClipTol * ref);
    for (const auto& [n, p] : params) {
      auto it = fx.find(pre + "after." + n);
      if (it == fx.end()) {
        EXPECT_FALSE(p.grad().defined());
      } else {
        EXPECT_CLOSE(p.grad(), it->second, kClipTol);
      }
    }
  }
}

// ---- schedules ----

// PyTorch's ReduceLROnPlateau kwargs; the missing ones take the (equal) defaults.
PlateauOptions plateau_options(const json& kw) {
  PlateauOptions o;
  o.mode = kw.value("mode", o.mode);
  o.factor = num(kw, "factor", o.factor);
  o.patience = kw.value("patience", o.patience);
  o.threshold = num(kw, "threshold", o.threshold);
  o.threshold_mode = kw.value("threshold_mode", o.threshold_mode);
  o.cooldown = kw.value("cooldown", o.cooldown);
  o.min_lr = num(kw, "min_lr", o.min_lr);
  return o;
}

std::unique_ptr<LRScheduler> make_scheduler(const json& c, Optimizer& opt) {
  const std::string type = c["type"];
  const json& kw = c["kwargs"];
  if (type == "StepLR") {
    return std::make_unique<StepLR>(opt, kw["step_size"].get<int64_t>(), num(kw, "gamma", 0.1));
  }
  if (type == "CosineAnnealingLR") {
    return std::make_unique<CosineAnnealingLR>(opt, kw["T_max"].get<int64_t>(),
                                               num(kw, "eta_min", 0));
  }
  return std::make_unique<ReduceLROnPlateau>(opt, plateau_options(kw));
}

double metric_at(const json& c, size_t e) {
  return c["metrics"].is_null() ? 0.0 : c["metrics"][e].get<double>();
}

TEST(ParitySchedulers, LrSequencesMatchPyTorch) {
  Metadata meta;
  testing::load_fixture("schedulers.safetensors", &meta);
  ASSERT_TRUE(meta.count("cases"));
  auto cases = json::parse(meta.at("cases"));
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    SCOPED_TRACE("schedule case " + std::to_string(i) + " " + c["type"].dump() + " " +
                 c["kwargs"].dump());
    SGD opt({{"w", Tensor::zeros({1}).set_requires_grad(true)}}, c["lr"].get<double>());
    auto sched = make_scheduler(c, opt);
    const json& lrs = c["lrs"];
    ASSERT_GE(lrs.size(), 30u);
    for (size_t e = 0; e < lrs.size(); ++e) {
      sched->epoch_end(metric_at(c, e));
      const double ref = lrs[e].get<double>();
      EXPECT_NEAR(opt.lr(), ref, kLrTol * std::abs(ref)) << "epoch " << e;
    }
    EXPECT_EQ(sched->last_epoch(), static_cast<int64_t>(lrs.size()));
  }
}

TEST(OptimScheduler, ResumeFromJsonContinuesExactly) {
  Metadata meta;
  testing::load_fixture("schedulers.safetensors", &meta);
  ASSERT_TRUE(meta.count("cases"));
  auto cases = json::parse(meta.at("cases"));
  const size_t stop = 15;
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    SCOPED_TRACE("schedule case " + std::to_string(i));
    auto param = [] { return NamedParams{{"w", Tensor::zeros({1}).set_requires_grad(true)}}; };
    SGD whole_opt(param(), c["lr"].get<double>());
    auto whole = make_scheduler(c, whole_opt);
    SGD first_opt(param(), c["lr"].get<double>());
    auto first = make_scheduler(c, first_opt);
    for (size_t e = 0; e < stop; ++e) first->epoch_end(metric_at(c, e));
    Metadata saved;
    TensorMap state = first_opt.state_dict(saved);
    saved["scheduler"] = first->to_json();

    // Rebuild with other settings: the JSON and the optimizer state bring back the real ones.
    SGD second_opt(param(), 1.0);
    second_opt.load_state_dict(state, saved);
    json other = c;
    other["kwargs"] = c["type"] == "ReduceLROnPlateau" ? json::object()
                      : c["type"] == "StepLR"          ? json{{"step_size", 2}}
                                                       : json{{"T_max", 3}};
    auto second = make_scheduler(other, second_opt);
    second->from_json(saved.at("scheduler"));
    EXPECT_EQ(second->to_json(), first->to_json());
    for (size_t e = 0; e < c["lrs"].size(); ++e) {
      whole->epoch_end(metric_at(c, e));
      if (e >= stop) {
        second->epoch_end(metric_at(c, e));
        EXPECT_EQ(second_opt.lr(), whole_opt.lr()) << "epoch " << e;
      }
    }
  }
}

// ---- the study's batch-window plateau schedule (tests/py/fx_plateau_window.py) ----

struct WindowCase {
  json c;
  std::vector<float> losses;
  int64_t batches_per_epoch() const { return c["batches_per_epoch"].get<int64_t>(); }
};

std::vector<WindowCase> load_window_cases() {
  Metadata meta;
  TensorMap fx = testing::load_fixture("plateau_window.safetensors", &meta);
  std::vector<WindowCase> cases;
  if (!meta.count("cases")) return cases;
  const json all = json::parse(meta.at("cases"));
  for (size_t i = 0; i < all.size(); ++i) {
    cases.push_back({all[i], get(fx, "c" + std::to_string(i) + ".losses").to_vector()});
  }
  return cases;
}

std::unique_ptr<WindowedPlateau> make_windowed(const WindowCase& w, Optimizer& opt) {
  return std::make_unique<WindowedPlateau>(opt, w.c["window"].get<int64_t>(),
                                           plateau_options(w.c["kwargs"]));
}

// Feeds batches [from, to) of the case as the training loop does: batch_end after each batch,
// epoch_end after an epoch's last; calls check(k) after batch k.
template <class Check>
void feed(const WindowCase& w, LRScheduler& sched, size_t from, size_t to, Check check) {
  const size_t per_epoch = static_cast<size_t>(w.batches_per_epoch());
  for (size_t k = from; k < to; ++k) {
    sched.batch_end(static_cast<double>(w.losses[k]));  // loss.item(): the float, widened
    if (k % per_epoch == per_epoch - 1) sched.epoch_end(0.0);
    check(k);
  }
}

// The lr after every batch equals PyTorch's exactly: both sum the same doubles in the same
// order, divide by the window, and compare and scale in double.
TEST(ParitySchedulers, WindowedPlateauMatchesTheStudysLoop) {
  const std::vector<WindowCase> cases = load_window_cases();
  ASSERT_EQ(cases.size(), 4u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const WindowCase& w = cases[i];
    SCOPED_TRACE("window case " + std::to_string(i) + " " + w.c["kwargs"].dump());
    SGD opt({{"w", Tensor::zeros({1}).set_requires_grad(true)}}, w.c["lr"].get<double>());
    auto sched = make_windowed(w, opt);
    const json& lrs = w.c["lrs"];
    ASSERT_EQ(lrs.size(), w.losses.size());
    int reductions = 0;
    size_t mismatches = 0;
    feed(w, *sched, 0, w.losses.size(), [&](size_t k) {
      const double ref = lrs[k].get<double>();
      if (opt.lr() != ref && mismatches++ == 0) {
        ADD_FAILURE() << "batch " << k << ": lr " << opt.lr() << ", PyTorch's " << ref;
      }
      reductions += k > 0 && lrs[k] != lrs[k - 1];
    });
    EXPECT_EQ(mismatches, 0u);
    EXPECT_GE(reductions, 3) << "the case should reduce the lr several times";
    const int64_t windows_per_epoch = w.batches_per_epoch() / w.c["window"].get<int64_t>();
    EXPECT_EQ(sched->last_epoch(),
              windows_per_epoch * static_cast<int64_t>(w.losses.size()) / w.batches_per_epoch());
  }
}

// A run stopped at any batch (in a window, at a window's end, in an epoch's dropped tail, at an
// epoch's end) and rebuilt from to_json continues with the uninterrupted run's lr sequence.
TEST(OptimScheduler, WindowedPlateauResumesInTheMiddleOfAWindow) {
  const std::vector<WindowCase> cases = load_window_cases();
  ASSERT_EQ(cases.size(), 4u);
  const WindowCase& w = cases[0];  // the study's: 237 batches an epoch, windows of 50
  auto param = [] { return NamedParams{{"w", Tensor::zeros({1}).set_requires_grad(true)}}; };
  for (size_t stop : {size_t(1), size_t(20), size_t(49), size_t(50), size_t(220), size_t(236),
                      size_t(237 * 7 + 30), size_t(1900)}) {
    SCOPED_TRACE("stopped after batch " + std::to_string(stop));
    SGD first_opt(param(), w.c["lr"].get<double>());
    auto first = make_windowed(w, first_opt);
    feed(w, *first, 0, stop, [](size_t) {});
    Metadata saved;
    TensorMap state = first_opt.state_dict(saved);
    const std::string json_state = first->to_json();
    EXPECT_EQ(first->count(), static_cast<int64_t>(stop % 237 % 50));

    SGD second_opt(param(), 1.0);
    second_opt.load_state_dict(state, saved);
    WindowedPlateau second(second_opt, 7);  // the JSON brings back the real settings
    second.from_json(json_state);
    EXPECT_EQ(second.to_json(), json_state);
    const json& lrs = w.c["lrs"];
    size_t mismatches = 0;
    feed(w, second, stop, w.losses.size(), [&](size_t k) {
      const double ref = lrs[k].get<double>();
      if (second_opt.lr() != ref && mismatches++ == 0) {
        ADD_FAILURE() << "batch " << k << ": lr " << second_opt.lr() << ", PyTorch's " << ref;
      }
    });
    EXPECT_EQ(mismatches, 0u);
  }
}

TEST(OptimScheduler, BadArgumentsAndStateThrow) {
  SGD opt({{"w", Tensor::zeros({1}).set_requires_grad(true)}}, 0.1);
  expect_error([&] { StepLR(opt, 0); }, {"StepLR", "step_size", "0"});
  expect_error([&] { StepLR(opt, 3, -0.5); }, {"StepLR", "gamma", "-0.5"});
  expect_error([&] { CosineAnnealingLR(opt, 0); }, {"CosineAnnealingLR", "T_max"});
  expect_error([&] { CosineAnnealingLR(opt, 5, -1); }, {"CosineAnnealingLR", "eta_min", "-1"});
  expect_error([&] { ReduceLROnPlateau(opt, {.mode = "mean"}); }, {"ReduceLROnPlateau", "mean"});
  expect_error([&] { ReduceLROnPlateau(opt, {.factor = 1.0}); }, {"ReduceLROnPlateau", "factor"});
  expect_error([&] { ReduceLROnPlateau(opt, {.threshold_mode = "pct"}); }, {"pct"});
  expect_error([&] { ReduceLROnPlateau(opt, {.patience = -1}); }, {"patience", "-1"});

  StepLR step(opt, 3);
  CosineAnnealingLR cosine(opt, 10);
  expect_error([&] { step.from_json(cosine.to_json()); }, {"StepLR", "CosineAnnealingLR"});
  expect_error([&] { step.from_json("{not json"); }, {"StepLR", "JSON"});
  expect_error([&] { step.from_json(R"({"type":"StepLR","step_size":3,"gamma":0.1})"); },
               {"last_epoch", "missing"});
  // ReduceLROnPlateau's initial best is infinite, which JSON cannot hold as a number.
  ReduceLROnPlateau plateau(opt);
  ReduceLROnPlateau copy(opt, {.mode = "max"});
  copy.from_json(plateau.to_json());
  EXPECT_EQ(copy.best(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(copy.to_json(), plateau.to_json());

  expect_error([&] { WindowedPlateau(opt, 0); }, {"WindowedPlateau", "window", "0"});
  WindowedPlateau windowed(opt, 4);
  windowed.batch_end(1.0);
  const json good = json::parse(windowed.to_json());
  WindowedPlateau other(opt, 9);
  json bad = good;
  bad["count"] = 4;  // a full window is stepped, never stored
  expect_error([&] { other.from_json(bad.dump()); }, {"WindowedPlateau", "count 4", "window 4"});
  bad = good;
  bad["plateau"]["factor"] = 2.0;
  expect_error([&] { other.from_json(bad.dump()); }, {"ReduceLROnPlateau", "factor"});
  EXPECT_EQ(other.window(), 9) << "a failed from_json changes nothing";
  bad = good;
  bad.erase("sum");
  expect_error([&] { other.from_json(bad.dump()); }, {"WindowedPlateau", "'sum' is missing"});
  expect_error([&] { other.from_json(plateau.to_json()); },
               {"WindowedPlateau", "ReduceLROnPlateau"});
  other.from_json(good.dump());
  EXPECT_EQ(other.to_json(), windowed.to_json());
}

}  // namespace
}  // namespace engine
