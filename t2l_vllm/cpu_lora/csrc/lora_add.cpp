// t2l_fused.lora_add: the multi-LoRA update of one linear layer, every token through its own
// adapter, in one call (t2l_vllm/cpu_lora/fused.py builds it, packed.py calls it).
//
// For each token t whose slot s = slots[t] >= 0, and each live slice p of the layer:
//   h[r]                 = round_to_T(scale * dot(x[t, :], a[s, k0_p + r, :]))      r < ranks[p]
//   y[t, cols[p] + j]    = round_to_T(y[t, cols[p] + j] + sum_r h[r] * B_p[s][r, j]) j < widths[p]
// in float32, as vLLM's shrink-then-expand: the shrink rounded to the layer's dtype T, each sum
// rounded once. B_p[s] is the [ranks[p], widths[p]] block at b[s, off_p:], blocks slice after
// slice. Tokens with slot -1 are untouched. The factors a and b are in T, as vLLM keeps them
// (widened to float32 exactly, as they are read): a decode step with many adapters reads every
// token's own factors from memory, and in T they are half the bytes of float32 copies.
//
// Why: on CPU the Python ops of a LoRA update (6 to 14 per layer) cost more than its arithmetic;
// this is one call per layer, and reads only each token's own factors. It is a plain Python
// extension function, not a torch op: nothing traces it (it runs inside our own opaque op), and
// between two layers of a decode step, whose weights push the dispatcher's code and tables out
// of the core's caches, a torch.ops call costs ~37 us and this one ~20 (README, "The compiled
// LoRA op").
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/extension.h>

#include <algorithm>
#include <vector>

namespace {

// Asks for every cache line of n values at p, without waiting. A token's factors (~30 KB for
// SmolLM2-135M q/v in bf16) are rarely in the core's caches: the base layers between two LoRA
// layers stream megabytes of weights through them. Read on demand, their misses come a few at a
// time; asked for a token ahead, they overlap the current token's arithmetic (32 tokens over 32
// adapters, caches flushed between layers: ~14% faster per layer).
template <typename V>
inline void prefetch(const V* p, int64_t n) {
  const char* bytes = reinterpret_cast<const char*>(p);
  for (int64_t i = 0; i < n * static_cast<int64_t>(sizeof(V)); i += 64) __builtin_prefetch(bytes + i);
}

template <typename T>
void run(at::Tensor& y, const at::Tensor& x, const at::Tensor& a, const at::Tensor& b, const at::Tensor& slots,
         const std::vector<int64_t>& cols, const std::vector<int64_t>& widths, const std::vector<int64_t>& ranks,
         float scale) {
  const int64_t n_tok = x.size(0), d_in = x.size(1), k_all = a.size(1), b_size = b.size(1);
  const int64_t y_stride = y.stride(0), x_stride = x.stride(0);
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  const T* ap = a.data_ptr<T>();
  const T* bp = b.data_ptr<T>();
  const int64_t* sp = slots.data_ptr<int64_t>();
  const int64_t max_w = *std::max_element(widths.begin(), widths.end());
  // One token is ~10 us of work for SmolLM2-135M's q/v shapes: split only bigger batches.
  at::parallel_for(0, n_tok, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> xf(d_in), h(k_all), acc(max_w);
    const auto prefetch_slot = [&](int64_t slot) {
      prefetch(ap + slot * k_all * d_in, k_all * d_in);
      prefetch(bp + slot * b_size, b_size);
    };
    if (sp[begin] >= 0) prefetch_slot(sp[begin]);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t slot = sp[t];
      if (t + 1 < end && sp[t + 1] >= 0 && sp[t + 1] != slot) prefetch_slot(sp[t + 1]);
      if (slot < 0) continue;
      const T* xr = xp + t * x_stride;
      for (int64_t i = 0; i < d_in; ++i) xf[i] = static_cast<float>(xr[i]);
      const T* as = ap + slot * k_all * d_in;  // [k_all, d_in]
      for (int64_t r = 0; r < k_all; ++r) {
        const T* arow = as + r * d_in;
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int64_t i = 0; i < d_in; ++i) dot += xf[i] * static_cast<float>(arow[i]);
        h[r] = static_cast<float>(static_cast<T>(dot * scale));
      }
      const T* bs = bp + slot * b_size;
      T* yr = yp + t * y_stride;
      int64_t k0 = 0, off = 0;
      for (size_t p = 0; p < cols.size(); ++p) {
        const int64_t w = widths[p], k = ranks[p];
        float* ac = acc.data();
        std::fill(ac, ac + w, 0.f);
        for (int64_t r = 0; r < k; ++r) {
          const float hr = h[k0 + r];
          const T* brow = bs + off + r * w;
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) ac[j] += hr * static_cast<float>(brow[j]);
        }
        T* yc = yr + cols[p];
        for (int64_t j = 0; j < w; ++j) yc[j] = static_cast<T>(static_cast<float>(yc[j]) + ac[j]);
        k0 += k;
        off += k * w;
      }
    }
  });
}

void lora_add(at::Tensor y, const at::Tensor& x, const at::Tensor& a, const at::Tensor& b, const at::Tensor& slots,
              c10::IntArrayRef cols, c10::IntArrayRef widths, c10::IntArrayRef ranks, double scale) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(0) == y.size(0), "x [T, d_in] and y [T, d_out] expected");
  TORCH_CHECK(x.stride(1) == 1 && y.stride(1) == 1, "x and y need contiguous rows");
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), "x and y must have one dtype");
  TORCH_CHECK(a.dim() == 3 && a.size(2) == x.size(1) && a.is_contiguous() && a.scalar_type() == x.scalar_type(),
              "a: contiguous [slots, k, d_in] in x's dtype");
  TORCH_CHECK(b.dim() == 2 && b.size(0) == a.size(0) && b.is_contiguous() && b.scalar_type() == x.scalar_type(),
              "b: contiguous [slots, sum of rank x width] in x's dtype");
  TORCH_CHECK(slots.dim() == 1 && slots.size(0) == x.size(0) && slots.is_contiguous() &&
              slots.scalar_type() == at::kLong, "slots: int64 [T]");
  TORCH_CHECK(!cols.empty() && cols.size() == widths.size() && cols.size() == ranks.size(), "one col, width, rank per slice");
  int64_t k_sum = 0, b_sum = 0;
  for (size_t p = 0; p < cols.size(); ++p) {
    TORCH_CHECK(cols[p] >= 0 && widths[p] > 0 && cols[p] + widths[p] <= y.size(1), "slice outside y");
    k_sum += ranks[p];
    b_sum += ranks[p] * widths[p];
  }
  TORCH_CHECK(k_sum == a.size(1) && b_sum == b.size(1), "ranks and widths do not match a and b");
  if (x.size(0) > 0) {
    const auto [lo, hi] = std::minmax_element(slots.data_ptr<int64_t>(), slots.data_ptr<int64_t>() + slots.size(0));
    TORCH_CHECK(*lo >= -1 && *hi < a.size(0), "slot out of range");
  }
  const std::vector<int64_t> c(cols.begin(), cols.end()), w(widths.begin(), widths.end()), r(ranks.begin(), ranks.end());
  const float s = static_cast<float>(scale);
  switch (x.scalar_type()) {
    case at::kBFloat16: run<c10::BFloat16>(y, x, a, b, slots, c, w, r, s); break;
    case at::kHalf: run<c10::Half>(y, x, a, b, slots, c, w, r, s); break;
    case at::kFloat: run<float>(y, x, a, b, slots, c, w, r, s); break;
    default: TORCH_CHECK(false, "lora_add: bfloat16, float16 or float32 only, got ", x.scalar_type());
  }
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lora_add", &lora_add, "y += the LoRA update of every token with a slot (see the top of lora_add.cpp)",
        pybind11::arg("y"), pybind11::arg("x"), pybind11::arg("a"), pybind11::arg("b"), pybind11::arg("slots"),
        pybind11::arg("cols"), pybind11::arg("widths"), pybind11::arg("ranks"), pybind11::arg("scale"));
}
