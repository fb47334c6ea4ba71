// Per-image measurements the dataset explorer (tools/explore) reports, FiftyOne-style, without a
// model: quality properties (brightness, contrast, blur, entropy, grayscale), an exact-duplicate
// key, two perceptual hashes (dHash, pHash) for near duplicates, a colour-histogram embedding and
// the report's thumbnails; then the dataset-level pieces built on them: near-duplicate pairs found
// by multi-index hashing (sub-quadratic), duplicate groups by union-find, and numpy's percentile.
//
// The per-image functions are single-threaded and reentrant, so a caller may run one image per
// thread. Definitions of each number are in docs/EXPLORE.md; the thresholds below were measured on
// planted duplicates among synthetic scenes (tests/test_image_analysis.cpp).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "data/image.h"

namespace data {

struct ImageProperties {
  int width = 0, height = 0;
  float brightness = 0;    // mean luma Y = 0.299R + 0.587G + 0.114B (0..255)
  float contrast = 0;      // standard deviation of luma (population, ddof 0)
  float blur = 0;          // variance of the 4-neighbour Laplacian of luma over interior pixels
                           // (0 if width or height < 3)
  float entropy = 0;       // Shannon entropy, bits, of the 256-bin histogram of round(luma)
  bool grayscale = false;  // every pixel's max-min channel spread <= 8
};
// An empty image gives all zeros (grayscale false).
ImageProperties image_properties(const Image& img);

// Exact-duplicate key: a 64-bit hash (MurmurHash3-style word mixing, fmix64 finaliser) of width,
// height and every pixel byte. Equal images give equal keys; different ones collide with
// probability ~2^-64.
uint64_t pixel_hash(const Image& img);

// Difference hash: luma area-averaged to 9 wide x 8 high; bit r*8+c (bit 0 = least significant)
// is set when cell (r, c) is darker than cell (r, c+1). 0 for an empty image.
uint64_t dhash64(const Image& img);

// Perceptual hash: luma area-averaged to 32x32, 2-D DCT-II (unnormalised; the scale does not
// change the bits), the 8x8 lowest-frequency coefficients; bit u*8+v (u vertical frequency, v
// horizontal) is set when coefficient (u, v) > the median of the 63 AC coefficients (the DC
// term, which only follows brightness, is left out of the median; its own bit is set unless the
// image is black). 0 for an empty image.
uint64_t phash64(const Image& img);

// Embedding without a model: joint RGB histogram, 4 levels per channel (bin = (R>>6)*16 +
// (G>>6)*4 + (B>>6)), normalised to sum 1, then element-wise sqrt (Hellinger), so the Euclidean
// distance between two embeddings is sqrt(2) times the Hellinger distance. 64 values; all zero
// for an empty image.
std::vector<float> color_histogram(const Image& img);

// The image fitted into side x side keeping its aspect (the longer side becomes `side`, the
// shorter round(short * side / long), at least 1), area-averaged when shrinking, bilinear
// (resize_bilinear) when enlarging, centred on grey 128. An empty image gives the grey square.
Image thumbnail(const Image& img, int side);

int hamming64(uint64_t a, uint64_t b);

// numpy.percentile's default method ("linear"): sorted values v, position q/100*(n-1), linear
// interpolation between its neighbours with numpy's own lerp (so results match to the last bit
// for finite inputs). q in [0, 100]. Throws engine::Error on empty input or q out of range.
double percentile(std::vector<double> values, double q);

struct NearPair {
  int64_t a, b;  // a < b
  int dhash_distance, phash_distance;
};
// Every pair a < b with hamming(dhash) <= max_dhash and hamming(phash) <= max_phash, sorted by
// (a, b). Multi-index hashing, not a scan of all pairs: one hash is split into m bands with radii
// r_t, sum(r_t + 1) = max + 1, so by pigeonhole a pair within max has some band within its
// radius; each image looks up only those bands' neighbours (bucketed by band value), and both
// distances are checked on the candidates. The indexed hash (dHash or pHash: a pair must be near
// in both, so either will do) and m come from a cost model per call; with the kNear* defaults it
// is the pHash, as a 22-bit dHash radius leaves bands too short to prune. A brute-force scan is
// used where the model finds it cheaper (small n, or thresholds that prune nothing). Parallel
// (OpenMP); the result is independent of the thread count. dhash and phash must have equal sizes.
std::vector<NearPair> near_duplicate_pairs(const std::vector<uint64_t>& dhash,
                                           const std::vector<uint64_t>& phash, int max_dhash,
                                           int max_phash);

// Connected components (union-find) of the graph on nodes 0..n-1 with these edges, only those
// with >= 2 nodes; each sorted ascending, groups sorted by their first member. Throws
// engine::Error on an edge end outside 0..n-1.
std::vector<std::vector<int64_t>> connected_groups(
    int64_t n, const std::vector<std::pair<int64_t, int64_t>>& edges);

// The explorer's near-duplicate thresholds, measured on 1,800 synthetic 150x150 scenes (JPEG 90,
// as the generator writes them) against planted copies (tests/test_image_analysis.cpp prints the
// same distributions for its 420): the worst planted distances, dHash / pHash, were JPEG quality
// 60 22 / 6, 2x down-and-up rescale 10 / 4, +15 brightness 7 / 8. dHash is the noisy one: on flat
// areas (sky, water) its left/right comparisons flip under JPEG noise, so its threshold only
// gates and the pHash decides. Unrelated scenes within both: 0.017% of 1.6M pairs, nearly all
// look-alike "street" scenes of the generator. pHash distances are even (31 of the 63 AC bits are
// above their median, plus the DC bit), so 10 admits 0..10 and the next step out is 12.
inline constexpr int kNearDHashMax = 22;
inline constexpr int kNearPHashMax = 10;

}  // namespace data
