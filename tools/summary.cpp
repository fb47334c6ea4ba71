// summary: prints the layer table (layer, output shape, parameters) of a model, as the study did
// with torchsummary.
//
//   summary --model simple|bn_dropout|sigmoid|tanh [--image-size 64] [--classes 6] [--width 1]
#include <CLI/CLI.hpp>
#include <cstdio>

#include "models/custom_cnn.h"
#include "tools/lib/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"Print a model's layers, output shapes and parameter counts"};
  std::string model = "simple";
  int64_t image_size = 64, classes = 6;
  float width = 1.f;
  app.add_option("--model", model, "simple | bn_dropout | sigmoid | tanh")
      ->capture_default_str()
      ->check(CLI::IsMember({"simple", "bn_dropout", "sigmoid", "tanh"}));
  app.add_option("--image-size", image_size, "input height and width")->capture_default_str();
  app.add_option("--classes", classes, "number of output classes")->capture_default_str();
  app.add_option("--width", width, "channel-width multiplier")->capture_default_str();
  app::one_line_errors(app, "summary");
  CLI11_PARSE(app, argc, argv);
  try {
    engine::CustomCnnOptions o;
    o.variant = engine::parse_cnn_variant(model);
    o.image_size = image_size;
    o.num_classes = classes;
    o.width = width;
    engine::CustomCnn net(o);
    std::printf("%s (%s)\n%s", model.c_str(), "CustomCnn",
                engine::summary(net, {1, 3, image_size, image_size}).c_str());
  } catch (const std::exception& e) {
    return app::report_failure("summary", e);
  }
  return 0;
}
