// edgesort's GPU pre- and post-processing, compiled at start by NVRTC with
// --fmad=false: every expression below is the CPU reference's
// (crates/infer/src/letterbox.rs, decode.rs, types' BoundingBox::iou) in the
// same order, so without fused multiply-adds the results are the same bits.

// No headers: a box's image carries NVRTC but not always the toolkit's
// include files.

// Round to nearest even, as half::f16::from_f32 on the CPU.
__device__ __forceinline__ unsigned short to_half_bits(float value) {
    unsigned short bits;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
    return bits;
}

// Keep in step with PixelFormat in the Rust wrapper.
#define FORMAT_RGB24 0
#define FORMAT_BGR24 1
#define FORMAT_YUYV 2
#define FORMAT_NV12 3

struct Letterbox {
    int format;
    int frame_width;
    int frame_height;
    int stride;
    int input_width;
    int input_height;
    int resized_width;
    int resized_height;
    int pad_left;
    int pad_top;
    float ratio_x;
    float ratio_y;
    float pad_value;
    float inv_255;
    int half_output;
};

__device__ __forceinline__ unsigned char clamp_byte(int value) {
    value = (value + 128) >> 8;
    return (unsigned char)(value < 0 ? 0 : (value > 255 ? 255 : value));
}

__device__ __forceinline__ void yuv_to_rgb(int y, int u, int v, float* rgb) {
    int c = 298 * (y - 16);
    int d = u - 128;
    int e = v - 128;
    rgb[0] = (float)clamp_byte(c + 409 * e);
    rgb[1] = (float)clamp_byte(c - 100 * d - 208 * e);
    rgb[2] = (float)clamp_byte(c + 516 * d);
}

__device__ __forceinline__ void pixel(const unsigned char* frame, const Letterbox& p, int x, int y, float* rgb) {
    const int stride = p.stride;
    switch (p.format) {
    case FORMAT_RGB24: {
        const unsigned char* at = frame + (size_t)y * stride + 3 * x;
        rgb[0] = (float)at[0];
        rgb[1] = (float)at[1];
        rgb[2] = (float)at[2];
        break;
    }
    case FORMAT_BGR24: {
        const unsigned char* at = frame + (size_t)y * stride + 3 * x;
        rgb[0] = (float)at[2];
        rgb[1] = (float)at[1];
        rgb[2] = (float)at[0];
        break;
    }
    case FORMAT_YUYV: {
        const unsigned char* pair = frame + (size_t)y * stride + 4 * (x / 2);
        yuv_to_rgb(pair[2 * (x % 2)], pair[1], pair[3], rgb);
        break;
    }
    default: {
        const unsigned char* chroma = frame + (size_t)(p.frame_height + y / 2) * stride + 2 * (x / 2);
        yuv_to_rgb(frame[(size_t)y * stride + x], chroma[0], chroma[1], rgb);
        break;
    }
    }
}

// axis_taps() of the CPU letterbox, for one output sample.
__device__ __forceinline__ void tap(int out, int source, float ratio, int* low, int* high, float* low_weight,
    float* high_weight) {
    float position = fmaxf(((float)out + 0.5f) * ratio - 0.5f, 0.0f);
    int l = (int)floorf(position);
    l = l < source - 1 ? l : source - 1;
    int h = l + 1 < source - 1 ? l + 1 : source - 1;
    float weight = h == l ? 0.0f : position - (float)l;
    *low = l;
    *high = h;
    *low_weight = 1.0f - weight;
    *high_weight = weight;
}

// One thread per input-tensor pixel: sample the frame (any format), blend
// bilinearly with half-pixel centres, scale to 0..1, pad with grey, write
// the three planes as FP32 or FP16.
extern "C" __global__ void letterbox(const unsigned char* frame, void* tensor, Letterbox p) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= p.input_width || y >= p.input_height) {
        return;
    }
    float value[3];
    const int cx = x - p.pad_left;
    const int cy = y - p.pad_top;
    if (cx < 0 || cy < 0 || cx >= p.resized_width || cy >= p.resized_height) {
        value[0] = value[1] = value[2] = p.pad_value;
    } else {
        int x0, x1, y0, y1;
        float wx0, wx1, wy0, wy1;
        tap(cx, p.frame_width, p.ratio_x, &x0, &x1, &wx0, &wx1);
        tap(cy, p.frame_height, p.ratio_y, &y0, &y1, &wy0, &wy1);
        float top_left[3], bottom_left[3], top_right[3], bottom_right[3];
        pixel(frame, p, x0, y0, top_left);
        pixel(frame, p, x0, y1, bottom_left);
        pixel(frame, p, x1, y0, top_right);
        pixel(frame, p, x1, y1, bottom_right);
        for (int c = 0; c < 3; ++c) {
            float left = top_left[c] * wy0 + bottom_left[c] * wy1;
            float right = top_right[c] * wy0 + bottom_right[c] * wy1;
            value[c] = (left * wx0 + right * wx1) * p.inv_255;
        }
    }
    const size_t plane = (size_t)p.input_width * p.input_height;
    const size_t at = (size_t)y * p.input_width + x;
    if (p.half_output) {
        unsigned short* out = (unsigned short*)tensor;
        for (int c = 0; c < 3; ++c) {
            out[c * plane + at] = to_half_bits(value[c]);
        }
    } else {
        float* out = (float*)tensor;
        for (int c = 0; c < 3; ++c) {
            out[c * plane + at] = value[c];
        }
    }
}

// Keep in step with Candidate in the Rust wrapper (repr(C)).
struct Candidate {
    float x1, y1, x2, y2;
    float score;
    int class_id;
    int anchor;
};

// One value of the engine's output, FP32 or FP16 (widened exactly, as
// half::f16::to_f32 on the CPU).
__device__ __forceinline__ float output_at(const void* output, int half_output, size_t index) {
    if (half_output) {
        const unsigned short bits = ((const unsigned short*)output)[index];
        float value;
        asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
        return value;
    }
    return ((const float*)output)[index];
}

// One thread per anchor: the best class (first on ties), kept when it
// reaches the confidence; appended in no particular order.
extern "C" __global__ void decode(const void* output, int half_output, int classes, int anchors,
    float confidence, Candidate* candidates, int* count) {
    const int anchor = blockIdx.x * blockDim.x + threadIdx.x;
    if (anchor >= anchors) {
        return;
    }
    int best_class = 0;
    float best_score = __int_as_float(0xff800000); // -infinity
    for (int c = 0; c < classes; ++c) {
        float score = output_at(output, half_output, (size_t)(4 + c) * anchors + anchor);
        if (score > best_score) {
            best_score = score;
            best_class = c;
        }
    }
    if (!(best_score >= confidence)) {
        return;
    }
    const float cx = output_at(output, half_output, anchor);
    const float cy = output_at(output, half_output, (size_t)anchors + anchor);
    const float half_w = output_at(output, half_output, (size_t)2 * anchors + anchor) * 0.5f;
    const float half_h = output_at(output, half_output, (size_t)3 * anchors + anchor) * 0.5f;
    const int at = atomicAdd(count, 1);
    Candidate found;
    found.x1 = cx - half_w;
    found.y1 = cy - half_h;
    found.x2 = cx + half_w;
    found.y2 = cy + half_h;
    found.score = best_score;
    found.class_id = best_class;
    found.anchor = anchor;
    candidates[at] = found;
}

// The CPU's order (score descending, then anchor) as one 64-bit key that
// sorts ascending: candidate scores pass a positive threshold, so their bit
// patterns order like their values, and the best class per anchor makes the
// anchor unique.
__device__ __forceinline__ unsigned long long sort_key(const Candidate& c) {
    return ((unsigned long long)(~__float_as_uint(c.score)) << 32) | (unsigned int)c.anchor;
}

#define RANK_TILE 256

// Rank sort, step one: for each pair of 256-candidate tiles, every i counts
// the keys of the other tile below its own and adds the count to its
// position. Parallel over tile pairs, so the work per thread stays at one
// tile whatever the number of candidates. `positions` starts at zero (zeroed
// once, then by `scatter`).
extern "C" __global__ void rank(const Candidate* candidates, const int* count, int* positions) {
    __shared__ unsigned long long keys[RANK_TILE];
    const int n = *count;
    const int side = (n + RANK_TILE - 1) / RANK_TILE;
    for (int tile = blockIdx.x; tile < side * side; tile += gridDim.x) {
        const int i = (tile / side) * RANK_TILE + threadIdx.x;
        const int j = (tile % side) * RANK_TILE + threadIdx.x;
        __syncthreads();
        keys[threadIdx.x] = j < n ? sort_key(candidates[j]) : ~0ULL;
        __syncthreads();
        if (i < n) {
            const unsigned long long my_key = sort_key(candidates[i]);
            int below = 0;
            for (int k = 0; k < RANK_TILE; ++k) {
                below += keys[k] < my_key ? 1 : 0;
            }
            if (below) {
                atomicAdd(&positions[i], below);
            }
        }
    }
}

// Rank sort, step two: every candidate to its place.
// It also clears the rows' summaries for `overlaps`.
extern "C" __global__ void scatter(const Candidate* candidates, const int* count, int* positions,
    Candidate* sorted, unsigned long long* summaries, int summary_words) {
    const int n = *count;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        sorted[positions[i]] = candidates[i];
        // Ready for the next frame without a memset.
        positions[i] = 0;
        for (int k = 0; k < summary_words; ++k) {
            summaries[(size_t)i * summary_words + k] = 0;
        }
    }
}

// Bit i of word i/64 in row j: sorted candidate i < j of the same class
// overlaps j by more than the threshold, so j falls if i is kept. One block
// of OVERLAP_THREADS per 64x64 tile on or below the diagonal (tiles above it
// are never read), the tile's 64 earlier candidates in shared memory; four
// threads share each row, 16 columns each, so that the divergent IoU work
// is spread over enough warps to hide its latency.
#define OVERLAP_THREADS 256
// Bit w of a row's summary marks its word w as not zero, so that
// `suppress` reads only those.
extern "C" __global__ void overlaps(const Candidate* sorted, const int* count, float threshold,
    unsigned long long* predecessors, int words, unsigned long long* summaries, int summary_words) {
    __shared__ float x1[64], y1[64], x2[64], y2[64];
    __shared__ int class_ids[64];
    __shared__ unsigned long long row_bits[64];
    const int n = *count;
    const int side = (n + 63) / 64;
    const int lane = threadIdx.x % 64;
    const int part = threadIdx.x / 64;
    for (int tile = blockIdx.x; tile < side * side; tile += gridDim.x) {
        const int row_block = tile / side;
        const int column_block = tile % side;
        if (column_block > row_block) {
            continue;
        }
        const int first = column_block * 64;
        __syncthreads();
        if (part == 0) {
            row_bits[lane] = 0;
            if (first + lane < n) {
                const Candidate earlier = sorted[first + lane];
                x1[lane] = earlier.x1;
                y1[lane] = earlier.y1;
                x2[lane] = earlier.x2;
                y2[lane] = earlier.y2;
                class_ids[lane] = earlier.class_id;
            }
        }
        __syncthreads();
        const int j = row_block * 64 + lane;
        if (j < n) {
            const Candidate me = sorted[j];
            const float my_area = (me.x2 - me.x1) * (me.y2 - me.y1);
            const int limit = j - first < 64 ? j - first : 64;
            const int begin = part * 16;
            const int end = begin + 16 < limit ? begin + 16 : limit;
            unsigned long long bits = 0;
            for (int b = begin; b < end; ++b) {
                if (class_ids[b] != me.class_id) {
                    continue;
                }
                // BoundingBox::iou(kept = b, candidate = me). No overlap is
                // an IoU of 0, which never exceeds the threshold, so the
                // division is skipped there.
                const float w = fmaxf(fminf(x2[b], me.x2) - fmaxf(x1[b], me.x1), 0.0f);
                const float h = fmaxf(fminf(y2[b], me.y2) - fmaxf(y1[b], me.y1), 0.0f);
                const float intersection = w * h;
                if (!(intersection > 0.0f)) {
                    continue;
                }
                const float area = (x2[b] - x1[b]) * (y2[b] - y1[b]);
                const float union_area = area + my_area - intersection;
                const float iou = union_area > 0.0f ? intersection / union_area : 0.0f;
                if (iou > threshold) {
                    bits |= 1ULL << b;
                }
            }
            if (bits) {
                atomicOr(&row_bits[lane], bits);
            }
        }
        __syncthreads();
        if (part == 0 && j < n) {
            const unsigned long long bits = row_bits[lane];
            predecessors[(size_t)j * words + column_block] = bits;
            if (bits) {
                atomicOr(&summaries[(size_t)j * summary_words + column_block / 64], 1ULL << (column_block % 64));
            }
        }
    }
}

#define SUPPRESS_THREADS 1024

// Greedy NMS without a serial walk: candidate j is kept when every earlier
// candidate that overlaps it has fallen, and falls when one of them is
// kept. Rounds over all candidates in parallel settle at least the first
// undecided one each, and in practice all within a few (overlaps form
// small clusters); the result is exactly the greedy pass's. Then the kept
// ones are compacted in score order up to `max_detections`. One block of
// SUPPRESS_THREADS threads; `count` bytes of dynamic shared memory.
extern "C" __global__ void suppress(const Candidate* sorted, const int* count,
    const unsigned long long* predecessors, int words, const unsigned long long* summaries, int summary_words,
    int max_detections, Candidate* kept, int* kept_count) {
    extern __shared__ unsigned char dynamic[];
    volatile unsigned char* state = dynamic; // 0 undecided, 1 kept, 2 fallen
    __shared__ int changed;
    __shared__ int prefix[SUPPRESS_THREADS];
    const int n = *count;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        state[j] = 0;
    }
    while (true) {
        __syncthreads();
        if (threadIdx.x == 0) {
            changed = 0;
        }
        __syncthreads();
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            if (state[j] != 0) {
                continue;
            }
            bool any_kept = false;
            bool all_fallen = true;
            for (int k = 0; k < summary_words && !any_kept; ++k) {
                unsigned long long nonzero = summaries[(size_t)j * summary_words + k];
                while (nonzero && !any_kept) {
                    const int w = k * 64 + __ffsll((long long)nonzero) - 1;
                    nonzero &= nonzero - 1;
                    unsigned long long bits = predecessors[(size_t)j * words + w];
                    while (bits) {
                        const int i = w * 64 + __ffsll((long long)bits) - 1;
                        bits &= bits - 1;
                        const unsigned char decided = state[i];
                        if (decided == 1) {
                            any_kept = true;
                            break;
                        }
                        if (decided == 0) {
                            all_fallen = false;
                        }
                    }
                }
            }
            if (any_kept) {
                state[j] = 2;
                changed = 1;
            } else if (all_fallen) {
                state[j] = 1;
                changed = 1;
            }
        }
        __syncthreads();
        if (!changed) {
            break;
        }
    }
    // Each thread takes a contiguous run; a scan of the runs' counts gives
    // each run's first output slot.
    const int per = (n + SUPPRESS_THREADS - 1) / SUPPRESS_THREADS;
    const int begin = threadIdx.x * per;
    const int end = begin + per < n ? begin + per : n;
    int mine = 0;
    for (int j = begin; j < end; ++j) {
        mine += state[j] == 1 ? 1 : 0;
    }
    prefix[threadIdx.x] = mine;
    __syncthreads();
    for (int offset = 1; offset < SUPPRESS_THREADS; offset <<= 1) {
        const int add = threadIdx.x >= offset ? prefix[threadIdx.x - offset] : 0;
        __syncthreads();
        prefix[threadIdx.x] += add;
        __syncthreads();
    }
    int at = prefix[threadIdx.x] - mine;
    for (int j = begin; j < end && at < max_detections; ++j) {
        if (state[j] == 1) {
            kept[at++] = sorted[j];
        }
    }
    if (threadIdx.x == SUPPRESS_THREADS - 1) {
        const int total = prefix[threadIdx.x];
        *kept_count = total < max_detections ? total : max_detections;
    }
}

// Nothing: the benchmark's measure of one launch.
extern "C" __global__ void noop() {}

// Keeps the GPU busy while the benchmark enqueues the work it times, so
// that the CUDA events measure the GPU's time, not the host's submissions.
extern "C" __global__ void spin(long long cycles) {
    const long long start = clock64();
    while (clock64() - start < cycles) {
    }
}
