// summary: prints the layer table (layer, output shape, parameters) of a model, as the study did
// with torchsummary.
//
//   summary --model simple|bn_dropout|sigmoid|tanh|resnet50|mobilenet_v2 [--image-size N]
//           [--classes 6] [--width 1]
#include <CLI/CLI.hpp>
#include <cstdio>

#include "tools/lib/cli.h"
#include "tools/lib/model_io.h"

int main(int argc, char** argv) {
  CLI::App app{"Print a model's layers, output shapes and parameter counts"};
  std::string model = "simple";
  int64_t image_size = 0, classes = 6;
  float width = 1.f;
  app.add_option("--model", model, "simple | bn_dropout | sigmoid | tanh | resnet50 | mobilenet_v2")
      ->capture_default_str()
      ->check(CLI::IsMember(app::model_names()));
  app.add_option("--image-size", image_size,
                 "input height and width (default 64; 224 for resnet50 and mobilenet_v2)");
  app.add_option("--classes", classes, "number of output classes")->capture_default_str();
  app.add_option("--width", width, "channel-width multiplier (custom CNNs)")->capture_default_str();
  app::one_line_errors(app, "summary");
  CLI11_PARSE(app, argc, argv);
  try {
    app::ModelInfo info;
    info.model = model;
    info.image_size = int(image_size > 0 ? image_size : app::is_transfer_model(model) ? 224 : 64);
    info.width = width;
    ENGINE_CHECK(classes >= 1, "--classes must be at least 1, got ", classes);
    for (int64_t i = 0; i < classes; ++i) info.classes.push_back(std::to_string(i));
    engine::Generator gen(0);
    auto net = app::build_model(info, gen);
    std::printf("%s (%s)\n%s", model.c_str(), net->type_name().c_str(),
                engine::summary(*net, {1, 3, info.image_size, info.image_size}).c_str());
  } catch (const std::exception& e) {
    return app::report_failure("summary", e);
  }
  return 0;
}
