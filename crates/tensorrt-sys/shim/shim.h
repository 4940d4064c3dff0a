/*
 * C ABI of edgesort's TensorRT shim.
 *
 * TensorRT's API is C++ classes reached through virtual calls; Rust cannot
 * call it directly. This header is the whole boundary: opaque handles, fixed
 * width integers, C strings, byte buffers and plain function pointers. The
 * shim never links libnvinfer: the factory functions are loaded at run time
 * by the Rust side and handed in through es_trt_init.
 *
 * Fallible functions return ES_TRT_OK or another status and, on failure,
 * store a message in *error that the caller frees with es_trt_string_free.
 * No C++ exception crosses this boundary.
 */
#ifndef EDGESORT_TRT_SHIM_H
#define EDGESORT_TRT_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    ES_TRT_OK = 0,
    ES_TRT_FAILED = 1,
    /* The progress callback asked to stop the build. */
    ES_TRT_CANCELLED = 2,
    /* The ONNX parser failed; the message holds one parser error a line. */
    ES_TRT_PARSE_FAILED = 3,
};

/* The most dimensions a TensorRT tensor can have (Dims::MAX_DIMS). */
#define ES_TRT_MAX_DIMS 8

enum {
    ES_TRT_PRECISION_FP32 = 0,
    ES_TRT_PRECISION_FP16 = 1,
    ES_TRT_PRECISION_INT8 = 2,
};

enum {
    ES_TRT_PROGRESS_PHASE_START = 0,
    ES_TRT_PROGRESS_STEP = 1,
    ES_TRT_PROGRESS_PHASE_FINISH = 2,
};

typedef struct es_trt_lib es_trt_lib;
typedef struct es_trt_runtime es_trt_runtime;
typedef struct es_trt_engine es_trt_engine;
typedef struct es_trt_context es_trt_context;
typedef struct es_trt_blob es_trt_blob;

/* createInferBuilder_INTERNAL and createInferRuntime_INTERNAL. */
typedef void* (*es_trt_create_fn)(void* logger, int32_t version);
/* createNvOnnxParser_INTERNAL. */
typedef void* (*es_trt_create_parser_fn)(void* network, void* logger, int version);
/* Severity is ILogger::Severity: 0 internal error .. 4 verbose. */
typedef void (*es_trt_log_fn)(void* user, int32_t severity, const char* message);
/*
 * event is an ES_TRT_PROGRESS_* value; parent is NULL except for a phase
 * start inside another phase; value is the step count of a starting phase or
 * the number of the completed step. Returns 0 to cancel the build.
 */
typedef int32_t (*es_trt_progress_fn)(
    void* user, int32_t event, const char* phase, const char* parent, int32_t value);

/* TensorRT version of the headers the shim was compiled against, encoded as
 * major * 10000 + minor * 100 + patch. */
int32_t es_trt_header_version(void);

/* create_parser may be NULL when libnvonnxparser is missing; builds then fail. */
int32_t es_trt_init(es_trt_create_fn create_builder, es_trt_create_fn create_runtime,
    es_trt_create_parser_fn create_parser, es_trt_log_fn log, void* log_user, es_trt_lib** out,
    char** error);
void es_trt_free(es_trt_lib* lib);
void es_trt_string_free(char* string);

int32_t es_trt_dla_cores(es_trt_lib* lib, int32_t* out, char** error);

typedef struct es_trt_build_options {
    const char* onnx_path;
    int32_t precision;
    /* Legacy INT8 calibration cache; TensorRT < 10 only (10.x rejects it). */
    const void* calibration_cache;
    size_t calibration_cache_size;
    /* One optimisation profile for this input when not NULL. */
    const char* profile_input;
    int32_t profile_rank;
    const int64_t* profile_min;
    const int64_t* profile_opt;
    const int64_t* profile_max;
    uint64_t workspace_bytes;
    /* -1 builds for the GPU. */
    int32_t dla_core;
    int32_t gpu_fallback;
    /* Serialized timing cache to start from; size 0 starts a new one. */
    const void* timing_cache;
    size_t timing_cache_size;
    /* kSTRONGLY_TYPED network; TensorRT >= 10 only, precision must be FP32. */
    int32_t strongly_typed;
    /* Called on TensorRT >= 10 only; may be NULL. */
    es_trt_progress_fn progress;
    void* progress_user;
} es_trt_build_options;

int32_t es_trt_build(es_trt_lib* lib, const es_trt_build_options* options, es_trt_blob** plan,
    es_trt_blob** timing_cache, char** error);

const void* es_trt_blob_data(const es_trt_blob* blob);
size_t es_trt_blob_size(const es_trt_blob* blob);
void es_trt_blob_free(es_trt_blob* blob);

/* dla_core -1 leaves the runtime on its default core. */
int32_t es_trt_runtime_create(es_trt_lib* lib, int32_t dla_core, es_trt_runtime** out, char** error);
void es_trt_runtime_free(es_trt_runtime* runtime);

/* The engine must be freed before its runtime. */
int32_t es_trt_deserialize(es_trt_runtime* runtime, const void* plan, size_t size,
    es_trt_engine** out, char** error);
void es_trt_engine_free(es_trt_engine* engine);

int32_t es_trt_engine_io_count(const es_trt_engine* engine);
/*
 * *name lives as long as the engine. data_type is TensorRT's DataType value;
 * dims holds ES_TRT_MAX_DIMS entries of which *rank are set, -1 for dynamic.
 */
int32_t es_trt_engine_io_tensor(const es_trt_engine* engine, int32_t index, const char** name,
    int32_t* is_input, int32_t* data_type, int32_t* rank, int64_t* dims, char** error);

/* The context must be freed before its engine. */
int32_t es_trt_context_create(es_trt_engine* engine, es_trt_context** out, char** error);
void es_trt_context_free(es_trt_context* context);
int32_t es_trt_context_set_input_shape(
    es_trt_context* context, const char* name, int32_t rank, const int64_t* dims, char** error);
/* The shape of any tensor once the input shapes are set: an output's size. */
int32_t es_trt_context_tensor_shape(
    const es_trt_context* context, const char* name, int32_t* rank, int64_t* dims, char** error);
int32_t es_trt_context_set_tensor_address(
    es_trt_context* context, const char* name, void* device_ptr, char** error);
/* stream is a cudaStream_t. */
int32_t es_trt_context_enqueue(es_trt_context* context, void* stream, char** error);

#ifdef __cplusplus
}
#endif

#endif
