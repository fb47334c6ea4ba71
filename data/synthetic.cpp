// Procedural scenes for the synthetic Intel-Image-Classification stand-in, and the writer that lays
// them out as the Kaggle archive does. Scenes are drawn in unit coordinates ((0,0) top-left,
// (1,1) bottom-right) so one description serves every image size; a pixel takes a shape's colour
// when its centre lies inside the shape.
//
// Randomness comes from engine::Generator (Philox, integer arithmetic only) rather than
// <random>'s distributions, whose outputs differ between standard libraries: the same
// (class, seed, size) must give the same pixels wherever the tests run.
#include "data/synthetic.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <span>
#include <string_view>
#include <system_error>

#include "engine/error.h"
#include "engine/file_io.h"
#include "engine/random.h"

namespace data {

const std::vector<std::string> kSceneClasses = {"buildings", "forest", "glacier",
                                                "mountain",  "sea",    "street"};

namespace {

namespace fs = std::filesystem;

constexpr int kMinSize = 8, kMaxSize = 4096;

struct Rgb {
  float r, g, b;
};
struct Pt {
  float x, y;
};

Rgb mix(Rgb a, Rgb b, float t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}
Rgb scale(Rgb a, float s) { return {a.r * s, a.g * s, a.b * s}; }

// The draws one scene makes, in order. Each class draws from its own counter range of the
// image's Philox stream, so a class never replays another class's numbers for the same seed.
class Rng {
 public:
  Rng(uint64_t seed, int class_index) { gen_.set_state(seed, uint64_t(class_index + 1) << 40); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * gen_.uniform(); }
  int below(int n) { return int(gen_.below(uint64_t(n))); }
  bool chance(float p) { return gen_.uniform() < p; }
  // A colour with each channel moved by up to +-spread, plus a shared brightness shift so that
  // shades vary as well as hues.
  Rgb jitter(Rgb c, float spread) {
    float common = uniform(-spread, spread);
    return {c.r + common + uniform(-spread, spread) * 0.5f,
            c.g + common + uniform(-spread, spread) * 0.5f,
            c.b + common + uniform(-spread, spread) * 0.5f};
  }

 private:
  engine::Generator gen_;
};

class Canvas {
 public:
  explicit Canvas(int n) : img_(n, n), n_(n) {}

  void rect(float x0, float y0, float x1, float y1, Rgb c, float alpha = 1.f) {
    int i0 = first(x0), i1 = first(x1), j0 = first(y0), j1 = first(y1);
    for (int j = j0; j < j1; ++j)
      for (int i = i0; i < i1; ++i) put(i, j, c, alpha);
  }

  // Even-odd scanline fill: concave outlines (jagged ridges, tree lines) need no triangulation.
  void polygon(const std::vector<Pt>& p, Rgb c, float alpha = 1.f) {
    if (p.size() < 3) return;
    float ymin = p[0].y, ymax = p[0].y;
    for (const Pt& q : p) ymin = std::min(ymin, q.y), ymax = std::max(ymax, q.y);
    std::vector<float> xs;
    for (int j = first(ymin), j1 = first(ymax); j < j1; ++j) {
      float yc = (float(j) + 0.5f) / float(n_);
      xs.clear();
      for (size_t k = 0; k < p.size(); ++k) {
        const Pt& a = p[k];
        const Pt& b = p[(k + 1) % p.size()];
        // Half-open in y, so a vertex shared by two edges is counted once.
        if ((a.y <= yc) != (b.y <= yc)) xs.push_back(a.x + (yc - a.y) * (b.x - a.x) / (b.y - a.y));
      }
      std::sort(xs.begin(), xs.end());
      for (size_t k = 0; k + 1 < xs.size(); k += 2)
        for (int i = first(xs[k]), i1 = first(xs[k + 1]); i < i1; ++i) put(i, j, c, alpha);
    }
  }

  void ellipse(float cx, float cy, float rx, float ry, Rgb c, float alpha = 1.f) {
    for (int j = first(cy - ry), j1 = first(cy + ry); j < j1; ++j) {
      float dy = ((float(j) + 0.5f) / float(n_) - cy) / ry;
      if (dy * dy >= 1.f) continue;
      float half = rx * std::sqrt(1.f - dy * dy);
      for (int i = first(cx - half), i1 = first(cx + half); i < i1; ++i) put(i, j, c, alpha);
    }
  }

  // Vertical colour gradient filling the band y0..y1 across the whole width.
  void vgradient(float y0, float y1, Rgb top, Rgb bottom) {
    for (int j = first(y0), j1 = first(y1); j < j1; ++j) {
      float t = std::clamp(((float(j) + 0.5f) / float(n_) - y0) / (y1 - y0), 0.f, 1.f);
      Rgb c = mix(top, bottom, t);
      for (int i = 0; i < n_; ++i) put(i, j, c, 1.f);
    }
  }

  // Camera-like finish: an overall exposure change and independent per-pixel noise of up to
  // +-amplitude per channel. One Philox block per pixel keeps this cheap and order-free.
  void finish(uint64_t seed, float exposure, int amplitude) {
    uint8_t* px = img_.pixels.data();
    for (size_t k = 0, n = size_t(n_) * size_t(n_); k < n; ++k) {
      auto w = engine::Philox::block(seed, 3, k);
      for (int ch = 0; ch < 3; ++ch) {
        int noise = int(w[ch] % uint32_t(2 * amplitude + 1)) - amplitude;
        float v = float(px[3 * k + ch]) * exposure + float(noise);
        px[3 * k + ch] = uint8_t(std::clamp(v + 0.5f, 0.f, 255.f));
      }
    }
  }

  Image take() { return std::move(img_); }

 private:
  // Index of the first pixel whose centre is at or past unit coordinate u, clamped to the image.
  int first(float u) const {
    float v = std::ceil(u * float(n_) - 0.5f);
    return int(std::clamp(v, 0.f, float(n_)));
  }
  void put(int i, int j, Rgb c, float alpha) {
    uint8_t* p = img_.row(j) + 3 * i;
    float v[3] = {c.r, c.g, c.b};
    for (int ch = 0; ch < 3; ++ch) {
      float out = alpha >= 1.f ? v[ch] : float(p[ch]) + (v[ch] - float(p[ch])) * alpha;
      p[ch] = uint8_t(std::clamp(out + 0.5f, 0.f, 255.f));
    }
  }

  Image img_;
  int n_;
};

Rgb sky_colour_top(Rng& r) { return r.jitter({95, 150, 215}, 18); }
Rgb sky_colour_bottom(Rng& r) { return r.jitter({195, 215, 238}, 12); }

// A few soft white blobs.
void clouds(Canvas& c, Rng& r, float y_max, int max_count) {
  for (int k = r.below(max_count + 1); k > 0; --k) {
    float cx = r.uniform(0.f, 1.f), cy = r.uniform(0.04f, y_max), w = r.uniform(0.06f, 0.16f);
    Rgb white = r.jitter({240, 242, 246}, 8);
    for (int b = 0; b < 3; ++b)
      c.ellipse(cx + (float(b) - 1.f) * w * 0.8f, cy + r.uniform(-0.01f, 0.01f),
                w * r.uniform(0.7f, 1.1f), w * r.uniform(0.3f, 0.5f), white, 0.85f);
  }
}

// buildings: facades of varying heights and materials with window grids, against the sky.
void draw_buildings(Canvas& c, Rng& r) {
  Rgb sky_top = sky_colour_top(r), sky_bottom = sky_colour_bottom(r);
  c.vgradient(0.f, 1.f, sky_top, sky_bottom);
  clouds(c, r, 0.2f, 2);
  const Rgb materials[] = {
      {130, 128, 125}, {125, 90, 65}, {195, 175, 145}, {150, 80, 60}, {95, 100, 110}};
  float ground = r.uniform(0.82f, 0.94f);
  // Back row first, paled towards the sky (haze), then the front row over it.
  for (int layer = 0; layer < 2; ++layer) {
    float x = r.uniform(-0.12f, 0.f);
    while (x < 1.f) {
      float w = layer == 0 ? r.uniform(0.1f, 0.24f) : r.uniform(0.15f, 0.34f);
      float top = layer == 0 ? r.uniform(0.04f, 0.3f) : r.uniform(0.12f, 0.55f);
      Rgb wall = r.jitter(materials[r.below(5)], 14);
      if (layer == 0) wall = mix(wall, sky_bottom, 0.35f);
      c.rect(x, top, x + w, ground, wall);
      c.rect(x, top, x + w, top + 0.015f, scale(wall, 0.75f));  // cornice
      // Window grid: dark glass, some lit or reflecting.
      int cols = std::max(2, int(w / r.uniform(0.035f, 0.06f)));
      float pitch_x = w / float(cols), pitch_y = r.uniform(0.045f, 0.07f);
      float fill_x = r.uniform(0.45f, 0.65f), fill_y = r.uniform(0.45f, 0.6f);
      Rgb glass = r.jitter({50, 60, 78}, 12), lit = r.jitter({215, 205, 160}, 15);
      if (layer == 0) glass = mix(glass, sky_bottom, 0.3f);
      for (float y = top + 0.03f; y + pitch_y * fill_y < ground - 0.03f; y += pitch_y)
        for (int k = 0; k < cols; ++k) {
          float wx = x + pitch_x * (float(k) + (1.f - fill_x) / 2);
          c.rect(wx, y, wx + pitch_x * fill_x, y + pitch_y * fill_y, r.chance(0.18f) ? lit : glass);
        }
      x += w + (layer == 0 ? r.uniform(-0.03f, 0.02f) : r.uniform(0.f, 0.05f));
    }
  }
  c.rect(0.f, ground, 1.f, 1.f, r.jitter({118, 116, 112}, 12));  // pavement
}

// forest: dark greens, many conifers and round crowns from far (small, dark) to near.
void draw_forest(Canvas& c, Rng& r) {
  c.vgradient(0.f, 1.f, r.jitter({45, 78, 48}, 12), r.jitter({24, 44, 24}, 8));
  if (r.chance(0.5f))
    c.vgradient(0.f, r.uniform(0.06f, 0.2f), r.jitter({170, 195, 205}, 15),
                r.jitter({120, 150, 130}, 12));
  c.rect(0.f, r.uniform(0.8f, 0.9f), 1.f, 1.f, r.jitter({62, 55, 32}, 10));  // forest floor
  Rgb trunk = r.jitter({72, 48, 28}, 10);
  bool conifers = r.chance(0.7f);
  int n = 22 + r.below(22);
  for (int k = 0; k < n; ++k) {
    float t = float(k) / float(n - 1);  // 0 = far, 1 = near
    float h = (0.18f + 0.45f * t) * r.uniform(0.8f, 1.25f);
    float x = r.uniform(-0.1f, 1.1f), base = 0.55f + 0.45f * t + r.uniform(-0.05f, 0.05f);
    Rgb leaf = scale(r.jitter({38, 100, 40}, 18), 0.55f + 0.45f * t);
    float tw = h * 0.06f;
    c.rect(x - tw, base - h * 0.35f, x + tw, base, scale(trunk, 0.6f + 0.4f * t));
    if (conifers || r.chance(0.3f)) {
      for (int s = 0; s < 3; ++s) {  // three stacked tiers
        float apex = base - h + float(s) * h * 0.2f, half = h * (0.16f + 0.07f * float(s));
        c.polygon({{x, apex}, {x + half, apex + h * 0.38f}, {x - half, apex + h * 0.38f}},
                  scale(leaf, 1.f - 0.08f * float(s)));
      }
    } else {
      float rx = h * r.uniform(0.25f, 0.35f);
      c.ellipse(x, base - h * 0.62f, rx, h * 0.35f, leaf);
      c.ellipse(x - rx * 0.3f, base - h * 0.72f, rx * 0.5f, h * 0.18f, scale(leaf, 1.15f));
    }
  }
}

// A ridge line from x = -0.05 to 1.05 around height y, with jagged steps, closed at the bottom.
std::vector<Pt> jagged_ridge(Rng& r, float y, float up, float down, float step_lo, float step_hi) {
  std::vector<Pt> p;
  for (float x = -0.05f; x < 1.05f; x += r.uniform(step_lo, step_hi))
    p.push_back({x, y + r.uniform(-up, down)});
  p.push_back({1.05f, y + r.uniform(-up, down)});
  p.push_back({1.05f, 1.05f});
  p.push_back({-0.05f, 1.05f});
  return p;
}

// glacier: bright white and pale-cyan ice in jagged layers, blue shadows and crevasses.
void draw_glacier(Canvas& c, Rng& r) {
  c.vgradient(0.f, 0.6f, r.jitter({165, 195, 228}, 12), r.jitter({222, 232, 244}, 8));
  float y = r.uniform(0.12f, 0.35f);
  const Rgb ice[] = {{238, 244, 250}, {205, 228, 242}, {170, 210, 234}, {225, 238, 248}};
  int layers = 3 + r.below(2);
  for (int l = 0; l < layers; ++l) {
    Rgb base = r.jitter(ice[r.below(4)], 8);
    std::vector<Pt> ridge = jagged_ridge(r, y, 0.08f, 0.05f, 0.025f, 0.08f);
    c.polygon(ridge, base);
    // Below a sunlit rim the ice turns blue in shadow: the same ridge, lowered and tinted.
    float rim = r.uniform(0.03f, 0.07f);
    for (Pt& q : ridge) q.y += rim;
    c.polygon(ridge, mix(base, r.jitter({120, 170, 215}, 12), r.uniform(0.3f, 0.5f)));
    // Crevasses: narrow dark-blue slivers hanging down the face.
    for (int k = 2 + r.below(6); k > 0; --k) {
      float x = r.uniform(0.f, 1.f), top = y + rim + r.uniform(0.f, 0.06f);
      float w = r.uniform(0.006f, 0.02f), h = r.uniform(0.06f, 0.2f);
      c.polygon({{x - w, top}, {x + w, top}, {x + r.uniform(-0.03f, 0.03f), top + h}},
                r.jitter({85, 135, 185}, 12), r.uniform(0.6f, 0.9f));
    }
    y += r.uniform(0.12f, 0.22f);
  }
  if (r.chance(0.35f)) {  // meltwater at the foot
    float w = r.uniform(0.84f, 0.93f);
    c.rect(0.f, w, 1.f, 1.f, r.jitter({95, 160, 180}, 12));
  }
}

// mountain: sky gradient behind ranges of grey-brown triangular peaks, the highest snow-capped.
void draw_mountain(Canvas& c, Rng& r) {
  c.vgradient(0.f, 0.7f, r.jitter({70, 115, 190}, 15), r.jitter({185, 205, 230}, 10));
  clouds(c, r, 0.25f, 2);
  const Rgb rocks[] = {{112, 106, 100}, {118, 94, 74}, {96, 92, 96}};
  Rgb haze = r.jitter({175, 190, 210}, 8);
  int layers = 2 + r.below(2);
  for (int l = 0; l < layers; ++l) {
    float base = r.uniform(0.5f, 0.62f) + 0.13f * float(l);
    Rgb rock = r.jitter(rocks[r.below(3)], 12);
    rock = mix(scale(rock, 1.f - 0.15f * float(l)), haze,
               0.4f * float(layers - 1 - l) / float(layers));
    // Peaks left to right: apexes joined through valleys, slopes roughened.
    int peaks = 2 + r.below(3);
    float span = 1.3f / float(peaks);
    std::vector<Pt> outline{{-0.15f, base}};
    std::vector<std::array<Pt, 3>> caps;  // apex, left and right slope points
    for (int k = 0; k < peaks; ++k) {
      float ax = -0.15f + span * (float(k) + r.uniform(0.3f, 0.7f));
      float ay = base - r.uniform(0.18f, 0.42f) * (l == 0 ? 1.f : 0.75f);
      float vx = -0.15f + span * float(k + 1), vy = base - r.uniform(0.f, 0.1f);
      Pt prev = outline.back();
      for (int s = 1; s <= 3; ++s) {  // rough climb
        float t = float(s) / 4.f;
        outline.push_back(
            {prev.x + (ax - prev.x) * t, prev.y + (ay - prev.y) * t + r.uniform(-0.015f, 0.015f)});
      }
      outline.push_back({ax, ay});
      for (int s = 1; s <= 3; ++s) {  // rough descent
        float t = float(s) / 4.f;
        outline.push_back({ax + (vx - ax) * t, ay + (vy - ay) * t + r.uniform(-0.015f, 0.015f)});
      }
      outline.push_back({vx, vy});
      if (base - ay > 0.2f) {
        float f = r.uniform(0.2f, 0.32f);  // cap reaches this fraction down the slopes
        caps.push_back({Pt{ax, ay}, Pt{ax + (prev.x - ax) * f, ay + (prev.y - ay) * f},
                        Pt{ax + (vx - ax) * f, ay + (vy - ay) * f}});
      }
    }
    outline.push_back({1.2f, 1.05f});
    outline.push_back({-0.15f, 1.05f});
    c.polygon(outline, rock);
    // Snow, paled with distance like the rock.
    Rgb snow =
        mix(r.jitter({240, 244, 250}, 6), haze, 0.3f * float(layers - 1 - l) / float(layers));
    for (const auto& cap : caps) {
      std::vector<Pt> p{cap[0], cap[2]};
      for (int s = 3; s >= 1; --s) {  // jagged lower edge of the snow, right to left
        float t = float(s) / 4.f;
        float x = cap[1].x + (cap[2].x - cap[1].x) * t;
        float y = cap[1].y + (cap[2].y - cap[1].y) * t + (s % 2 ? 0.03f : -0.005f);
        p.push_back({x, y});
      }
      p.push_back(cap[1]);
      c.polygon(p, snow);
    }
  }
  if (r.chance(0.5f)) {  // a foreground slope of scrub
    float y = r.uniform(0.85f, 0.93f);
    c.polygon({{-0.05f, y},
               {0.5f, y + r.uniform(-0.05f, 0.03f)},
               {1.05f, y + r.uniform(-0.04f, 0.04f)},
               {1.05f, 1.05f},
               {-0.05f, 1.05f}},
              r.jitter({78, 82, 52}, 10));
  }
}

// sea: sky over a straight horizon, blue water with horizontal wave stripes that widen towards
// the viewer, sometimes a beach.
void draw_sea(Canvas& c, Rng& r) {
  float horizon = r.uniform(0.3f, 0.55f);
  c.vgradient(0.f, horizon, sky_colour_top(r), sky_colour_bottom(r));
  clouds(c, r, horizon * 0.7f, 4);
  if (r.chance(0.3f)) {  // distant headland
    float x0 = r.uniform(-0.2f, 0.6f), w = r.uniform(0.15f, 0.4f), h = r.uniform(0.01f, 0.04f);
    c.polygon({{x0, horizon},
               {x0 + w * 0.3f, horizon - h},
               {x0 + w * 0.7f, horizon - h * 0.8f},
               {x0 + w, horizon}},
              r.jitter({105, 120, 135}, 10));
  }
  Rgb far = r.jitter({70, 130, 185}, 14), near = r.jitter({22, 72, 135}, 12);
  c.vgradient(horizon, 1.f, far, near);
  Rgb light = r.jitter({130, 180, 220}, 10), dark = r.jitter({16, 52, 105}, 8);
  for (float y = horizon + 0.005f; y < 1.f;) {
    float d = y - horizon;
    float thick = 0.003f + 0.012f * d;
    for (int k = 1 + r.below(3); k > 0; --k) {
      float x = r.uniform(-0.2f, 1.f), len = r.uniform(0.1f, 0.6f);
      c.rect(x, y, x + len, y + thick, r.chance(0.5f) ? light : dark, r.uniform(0.5f, 0.9f));
    }
    y += 0.008f + 0.06f * d * r.uniform(0.6f, 1.4f);
  }
  if (r.chance(0.3f)) {  // beach with a line of foam
    float y = r.uniform(0.82f, 0.92f);
    std::vector<Pt> sand{{-0.05f, y}};
    for (float x = 0.1f; x < 1.05f; x += 0.15f) sand.push_back({x, y + r.uniform(-0.02f, 0.02f)});
    sand.push_back({1.05f, y});
    sand.push_back({1.05f, 1.05f});
    sand.push_back({-0.05f, 1.05f});
    c.polygon(sand, r.jitter({212, 192, 150}, 10));
    c.rect(0.f, y - 0.015f, 1.f, y + 0.005f, {235, 240, 242}, 0.6f);
  }
}

// street: a road in perspective towards a vanishing point, lane markings, facades on both sides.
void draw_street(Canvas& c, Rng& r) {
  Pt vp{r.uniform(0.38f, 0.62f), r.uniform(0.32f, 0.46f)};
  c.vgradient(0.f, vp.y + 0.05f, sky_colour_top(r), sky_colour_bottom(r));
  // Ground: pavements, then the road over them.
  c.rect(0.f, vp.y, 1.f, 1.f, r.jitter({148, 144, 138}, 10));
  float left = r.uniform(-0.45f, 0.05f), right = r.uniform(0.95f, 1.45f);
  Rgb asphalt = r.jitter({82, 83, 88}, 10);
  c.polygon({{vp.x - 0.006f, vp.y}, {vp.x + 0.006f, vp.y}, {right, 1.f}, {left, 1.f}}, asphalt);
  // Dashed centre line: dashes lengthen and widen with nearness.
  Rgb paint = r.chance(0.5f) ? r.jitter({230, 230, 225}, 8) : r.jitter({225, 190, 60}, 10);
  Pt bottom{(left + right) / 2.f + r.uniform(-0.05f, 0.05f), 1.f};
  for (float t = 0.08f; t < 1.f; t += 0.05f + 0.22f * t) {
    float t1 = std::min(1.f, t + 0.025f + 0.11f * t);
    auto at = [&](float u) {
      return Pt{vp.x + (bottom.x - vp.x) * u, vp.y + (bottom.y - vp.y) * u};
    };
    Pt a = at(t), b = at(t1);
    float wa = 0.002f + 0.02f * t, wb = 0.002f + 0.02f * t1;
    c.polygon({{a.x - wa, a.y}, {a.x + wa, a.y}, {b.x + wb, b.y}, {b.x - wb, b.y}}, paint);
  }
  // Facades: a wall on each side whose top and bottom edges run to the vanishing point.
  const Rgb materials[] = {{150, 85, 62}, {170, 160, 140}, {120, 118, 116}, {196, 180, 150}};
  for (int side = 0; side < 2; ++side) {
    float edge = side == 0 ? 0.f : 1.f;
    float end = vp.x + (side == 0 ? -1.f : 1.f) * r.uniform(0.05f, 0.12f);
    float top0 = r.uniform(-0.15f, 0.12f), bot0 = r.uniform(0.72f, 0.86f);
    float reach = (end - edge) / (vp.x - edge);  // 0 at the image edge, 1 at the vanishing point
    auto top_at = [&](float f) { return top0 + (vp.y - top0) * f; };
    auto bot_at = [&](float f) { return bot0 + (vp.y - bot0) * f; };
    Rgb wall = r.jitter(materials[r.below(4)], 12);
    c.polygon({{edge, top0}, {end, top_at(reach)}, {end, bot_at(reach)}, {edge, bot0}}, wall);
    // Window columns, closer together towards the vanishing point.
    Rgb glass = r.jitter({48, 56, 70}, 10);
    float rows = float(3 + r.below(4));
    for (float f = 0.04f; f + 0.05f < reach; f += 0.1f * (1.f - f) + 0.02f) {
      float f1 = f + 0.06f * (1.f - f);
      float xa = edge + (vp.x - edge) * f, xb = edge + (vp.x - edge) * f1;
      for (float q = 0.5f; q < rows; q += 1.f) {  // fractions of the wall height
        float u0 = (q - 0.3f) / (rows + 0.5f), u1 = (q + 0.2f) / (rows + 0.5f);
        auto y = [&](float fr, float u) { return top_at(fr) + (bot_at(fr) - top_at(fr)) * u; };
        c.polygon({{xa, y(f, u0)}, {xb, y(f1, u0)}, {xb, y(f1, u1)}, {xa, y(f, u1)}}, glass);
      }
    }
  }
  if (r.chance(0.4f)) {  // a car ahead
    float t = r.uniform(0.3f, 0.7f), w = 0.05f + 0.25f * t;
    float x = vp.x + (bottom.x - vp.x) * t + r.uniform(-0.5f, 0.5f) * w,
          y = vp.y + (1.f - vp.y) * t;
    c.rect(x - w / 2, y - w * 0.55f, x + w / 2, y, r.jitter({120, 40, 40}, 40));
    c.rect(x - w * 0.4f, y - w * 0.5f, x + w * 0.4f, y - w * 0.3f, {40, 45, 55});
  }
}

void check_size(int size, const char* who) {
  ENGINE_CHECK(size >= kMinSize && size <= kMaxSize, who, ": size must be between ", kMinSize,
               " and ", kMaxSize, ", got ", size);
}

// Per-image seeds for one dataset: a hash of the user's seed plus a structured index, so images
// within a dataset never share a seed and neighbouring user seeds give unrelated datasets.
enum Split : uint64_t { kTrain = 0, kTest = 1, kPred = 2 };
uint64_t image_seed(uint64_t base, Split split, int class_index, int k) {
  auto h = engine::Philox::block(base, 0x5eed, 0);
  uint64_t mixed = (uint64_t(h[0]) << 32) | h[1];
  return mixed + (uint64_t(split) << 48) + (uint64_t(class_index) << 32) + uint64_t(uint32_t(k));
}

// Zero padding wide enough for the largest index, so name order is numeric order.
std::string numbered(int k, int count) {
  int width = 4;
  for (int m = count - 1; m >= 10000; m /= 10) ++width;
  std::string s = std::to_string(k);
  return std::string(size_t(std::max(0, width - int(s.size()))), '0') + s + ".jpg";
}

// A name this generator writes ("0042.jpg"), or a temporary left by an interrupted atomic write
// of one ("0042.jpg.tmp-1234"). Only these are removed when a dataset is regenerated.
bool is_generated_name(std::string_view name) {
  auto digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  };
  size_t dot = name.find(".jpg");
  if (dot == std::string_view::npos || !digits(name.substr(0, dot))) return false;
  std::string_view rest = name.substr(dot + 4);
  return rest.empty() || (rest.starts_with(".tmp-") && digits(rest.substr(5)));
}

void make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  ENGINE_CHECK(!ec, "make_synthetic_dataset: ", dir.string(),
               ": cannot create directory: ", ec.message());
}

// Removes generated-looking files in dir that are not in keep (left by a larger earlier run).
void remove_stale(const fs::path& dir, const std::vector<std::string>& keep) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (is_generated_name(name) && !std::binary_search(keep.begin(), keep.end(), name))
      stale.push_back(it->path());
  }
  ENGINE_CHECK(!ec, "make_synthetic_dataset: ", dir.string(), ": cannot list: ", ec.message());
  for (const fs::path& p : stale) {
    fs::remove(p, ec);
    ENGINE_CHECK(!ec, "make_synthetic_dataset: ", p.string(),
                 ": cannot remove stale image: ", ec.message());
  }
}

// The command line that reproduces the files, quoted for a POSIX shell where needed.
std::string shell_quote(const std::string& s) {
  bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) ||
           std::string_view("/._-+=:,@").find(ch) != std::string_view::npos;
  });
  if (plain) return s;
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

std::string description(const SyntheticOptions& o, bool complete) {
  std::string classes;
  for (const std::string& name : kSceneClasses) classes += (classes.empty() ? "" : " ") + name;
  int n = int(kSceneClasses.size());
  return engine::detail::concat(
      "SYNTHETIC DATA: every image in this directory is procedurally generated "
      "(data/synthetic.cpp):\n"
      "simple shapes in the colours and layouts typical of each scene class, not photographs.\n"
      "It stands in for the Kaggle \"Intel Image Classification\" dataset so that tests, CI and\n"
      "demos run without a download; results measured on it say nothing about the real data.\n\n",
      "state: ", complete ? "complete" : "incomplete (generation was interrupted or is running)",
      "\nseed: ", o.seed, "\nimage size: ", o.size, "x", o.size, " (JPEG quality ", o.jpeg_quality,
      ")\nclasses: ", classes, "\nseg_train/seg_train: ", o.train_per_class, " per class (",
      int64_t(o.train_per_class) * n, ")\nseg_test/seg_test: ", o.test_per_class, " per class (",
      int64_t(o.test_per_class) * n, ")\nseg_pred/seg_pred: ", o.pred_count,
      " unlabelled, classes drawn at random\n", "command: make_dataset --out ",
      shell_quote(o.out_dir), " --train-per-class ", o.train_per_class, " --test-per-class ",
      o.test_per_class, " --pred ", o.pred_count, " --size ", o.size, " --seed ", o.seed,
      " --quality ", o.jpeg_quality, "\n");
}

}  // namespace

Image draw_scene(int class_index, uint64_t seed, int size) {
  ENGINE_CHECK(class_index >= 0 && class_index < int(kSceneClasses.size()),
               "draw_scene: class index ", class_index, " is out of range 0..",
               kSceneClasses.size() - 1);
  check_size(size, "draw_scene");
  Canvas c(size);
  Rng r(seed, class_index);
  switch (class_index) {
    case 0:
      draw_buildings(c, r);
      break;
    case 1:
      draw_forest(c, r);
      break;
    case 2:
      draw_glacier(c, r);
      break;
    case 3:
      draw_mountain(c, r);
      break;
    case 4:
      draw_sea(c, r);
      break;
    default:
      draw_street(c, r);
      break;
  }
  c.finish(seed ^ 0x9e3779b97f4a7c15ull, r.uniform(0.88f, 1.12f), 6);
  return c.take();
}

SyntheticSummary make_synthetic_dataset(const SyntheticOptions& o,
                                        const std::function<void(int64_t, int64_t)>& progress) {
  const char* who = "make_synthetic_dataset";
  ENGINE_CHECK(!o.out_dir.empty(), who, ": out_dir must name a directory");
  ENGINE_CHECK(o.train_per_class >= 1, who, ": train_per_class must be at least 1, got ",
               o.train_per_class);
  ENGINE_CHECK(o.test_per_class >= 1, who, ": test_per_class must be at least 1, got ",
               o.test_per_class);
  ENGINE_CHECK(o.pred_count >= 0, who, ": pred_count must be 0 or more, got ", o.pred_count);
  check_size(o.size, who);
  ENGINE_CHECK(o.jpeg_quality >= 1 && o.jpeg_quality <= 100, who,
               ": jpeg_quality must be in 1..100, got ", o.jpeg_quality);

  // Never write into someone's data: an existing directory must be empty or a previous output.
  const fs::path out(o.out_dir);
  const fs::path marker = out / "SYNTHETIC.txt";
  std::error_code ec;
  fs::file_status st = fs::status(out, ec);
  if (fs::exists(st)) {
    ENGINE_CHECK(fs::is_directory(st), who, ": ", out.string(), " exists and is not a directory");
    bool empty = fs::is_empty(out, ec);
    ENGINE_CHECK(!ec, who, ": ", out.string(), ": cannot read directory: ", ec.message());
    ENGINE_CHECK(empty || fs::is_regular_file(marker, ec), who, ": ", out.string(),
                 " is a non-empty directory without SYNTHETIC.txt, so not an earlier synthetic "
                 "dataset; refusing to write into it (choose a new or empty directory)");
  }
  make_dirs(out);
  // Marked first, so an interrupted run can be regenerated over without the refusal above.
  engine::write_file_atomic(marker.string(), description(o, false));

  const int n_classes = int(kSceneClasses.size());
  const int64_t total =
      int64_t(n_classes) * (int64_t(o.train_per_class) + o.test_per_class) + o.pred_count;
  int64_t done = 0;
  auto write_image = [&](const fs::path& path, int class_index, uint64_t seed) {
    std::vector<uint8_t> jpeg = encode_jpeg(draw_scene(class_index, seed, o.size), o.jpeg_quality);
    engine::write_file_atomic(path.string(), {std::span<const uint8_t>(jpeg)});
    if (progress) progress(++done, total);
  };

  SyntheticSummary summary;
  const struct {
    Split split;
    const char* dir;
    int count;
    int64_t* tally;
  } labelled[] = {{kTrain, "seg_train", o.train_per_class, &summary.train},
                  {kTest, "seg_test", o.test_per_class, &summary.test}};
  for (const auto& s : labelled) {
    for (int ci = 0; ci < n_classes; ++ci) {
      fs::path dir = out / s.dir / s.dir / kSceneClasses[size_t(ci)];
      make_dirs(dir);
      std::vector<std::string> names;
      for (int k = 0; k < s.count; ++k) {
        names.push_back(numbered(k, s.count));
        write_image(dir / names.back(), ci, image_seed(o.seed, s.split, ci, k));
        ++*s.tally;
      }
      std::sort(names.begin(), names.end());
      remove_stale(dir, names);
    }
  }
  fs::path pred_dir = out / "seg_pred" / "seg_pred";
  make_dirs(pred_dir);
  std::vector<std::string> names;
  for (int k = 0; k < o.pred_count; ++k) {
    uint64_t seed = image_seed(o.seed, kPred, 0, k);
    // The class comes from the image's own seed, so pred images are reproducible one by one.
    int ci = int(engine::Philox::block(seed, 0xc1a55, 0)[0] % uint32_t(n_classes));
    names.push_back(numbered(k, o.pred_count));
    write_image(pred_dir / names.back(), ci, seed);
    ++summary.pred;
  }
  std::sort(names.begin(), names.end());
  remove_stale(pred_dir, names);

  engine::write_file_atomic(marker.string(), description(o, true));
  return summary;
}

}  // namespace data
