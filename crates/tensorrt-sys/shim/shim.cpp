// edgesort's TensorRT shim: the C ABI of shim.h over TensorRT's C++ API.
//
// Compiles against TensorRT 8.5 through 10.x headers. Where the versions
// differ the code branches on NV_TENSORRT_MAJOR, each branch saying why.
// Nothing here references a libnvinfer symbol: objects come from the factory
// pointers given to es_trt_init, and everything after that is virtual calls,
// so the binary that contains the shim still starts where TensorRT is absent.

#include "shim.h"

#include <NvInfer.h>
#include <NvInferVersion.h>
#include <NvOnnxParser.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#if NV_TENSORRT_MAJOR < 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR < 5)
#error "edgesort's TensorRT shim needs TensorRT 8.5 or newer (named I/O tensors and enqueueV3)"
#endif

static_assert(ES_TRT_MAX_DIMS == nvinfer1::Dims::MAX_DIMS, "shim.h disagrees with TensorRT on MAX_DIMS");

namespace {

using nvinfer1::ILogger;
using Severity = nvinfer1::ILogger::Severity;

// Messages go to Rust, which frees them with es_trt_string_free (free()).
char* copy_string(char const* text) noexcept {
    size_t const length = std::strlen(text);
    char* out = static_cast<char*>(std::malloc(length + 1));
    if (out != nullptr) {
        std::memcpy(out, text, length + 1);
    }
    return out;
}

int32_t fail(char** error, std::string const& message, int32_t status = ES_TRT_FAILED) {
    if (error != nullptr) {
        *error = copy_string(message.c_str());
    }
    return status;
}

// Runs the body of an exported function: TensorRT's own calls are noexcept,
// but std::string, new and the parser can throw, and an exception unwinding
// into Rust would abort the process.
template <typename Body>
int32_t guarded(char** error, char const* what, Body&& body) noexcept {
    try {
        return body();
    } catch (std::bad_alloc const&) {
        if (error != nullptr) {
            *error = copy_string("out of memory (std::bad_alloc)");
        }
    } catch (std::exception const& e) {
        try {
            fail(error, std::string(what) + ": " + e.what());
        } catch (...) {
            if (error != nullptr) {
                *error = copy_string(what);
            }
        }
    } catch (...) {
        if (error != nullptr) {
            *error = copy_string(what);
        }
    }
    return ES_TRT_FAILED;
}

// Forwards every message to Rust and keeps the recent errors, because
// TensorRT's calls only return null or false and say why in the log.
class Logger final : public ILogger {
public:
    Logger(es_trt_log_fn forward, void* user) : forward_(forward), user_(user) {}

    void log(Severity severity, char const* message) noexcept override {
        char const* text = message != nullptr ? message : "";
        if (severity <= Severity::kERROR) {
            try {
                std::lock_guard<std::mutex> lock(mutex_);
                errors_.emplace_back(++sequence_, text);
                if (errors_.size() > kKept) {
                    errors_.pop_front();
                }
            } catch (...) {
                // Losing one message beats throwing into TensorRT.
            }
        }
        if (forward_ != nullptr) {
            forward_(user_, static_cast<int32_t>(severity), text);
        }
    }

    uint64_t mark() {
        std::lock_guard<std::mutex> lock(mutex_);
        return sequence_;
    }

    // Concurrent calls on other threads may add their errors too; a message
    // with a stranger's line beats one with no reason at all.
    std::string errors_since(uint64_t mark) {
        std::lock_guard<std::mutex> lock(mutex_);
        std::string joined;
        for (auto const& entry : errors_) {
            if (entry.first > mark) {
                joined += joined.empty() ? "" : "; ";
                joined += entry.second;
            }
        }
        return joined;
    }

private:
    static constexpr size_t kKept = 32;
    es_trt_log_fn forward_;
    void* user_;
    std::mutex mutex_;
    uint64_t sequence_ = 0;
    std::deque<std::pair<uint64_t, std::string>> errors_;
};

std::string with_log(std::string what, std::string const& log) {
    if (!log.empty()) {
        what += ": ";
        what += log;
    }
    return what;
}

int32_t library_version() {
    return static_cast<int32_t>(NV_TENSORRT_VERSION);
}

// int32 on 8.x (Dims32), int64 on 10.x (Dims64); the C side is always int64.
using DimValue = std::remove_all_extents_t<decltype(nvinfer1::Dims::d)>;

bool to_dims(int32_t rank, int64_t const* values, nvinfer1::Dims& dims, std::string& why) {
    if (rank < 0 || rank > nvinfer1::Dims::MAX_DIMS || (rank > 0 && values == nullptr)) {
        why = "rank " + std::to_string(rank) + " is outside 0.." + std::to_string(nvinfer1::Dims::MAX_DIMS);
        return false;
    }
    dims = nvinfer1::Dims{};
    dims.nbDims = rank;
    for (int32_t i = 0; i < rank; ++i) {
        if (values[i] < std::numeric_limits<DimValue>::min() || values[i] > std::numeric_limits<DimValue>::max()) {
            why = "dimension " + std::to_string(values[i]) + " does not fit this TensorRT's Dims";
            return false;
        }
        dims.d[i] = static_cast<DimValue>(values[i]);
    }
    return true;
}

#if NV_TENSORRT_MAJOR >= 10
// TensorRT 10 reports build phases and lets the application cancel; 8.x has
// no monitor. TensorRT may call from several threads, so calls into Rust are
// serialised here.
class Progress final : public nvinfer1::IProgressMonitor {
public:
    Progress(es_trt_progress_fn forward, void* user) : forward_(forward), user_(user) {}

    void phaseStart(char const* phase, char const* parent, int32_t steps) noexcept override {
        call(ES_TRT_PROGRESS_PHASE_START, phase, parent, steps);
    }

    bool stepComplete(char const* phase, int32_t step) noexcept override {
        if (call(ES_TRT_PROGRESS_STEP, phase, nullptr, step) == 0) {
            cancelled_ = true;
        }
        return !cancelled_;
    }

    void phaseFinish(char const* phase) noexcept override {
        call(ES_TRT_PROGRESS_PHASE_FINISH, phase, nullptr, 0);
    }

    bool cancelled() const { return cancelled_; }

private:
    int32_t call(int32_t event, char const* phase, char const* parent, int32_t value) noexcept {
        try {
            std::lock_guard<std::mutex> lock(mutex_);
            return forward_(user_, event, phase != nullptr ? phase : "", parent, value);
        } catch (...) {
            return 1;
        }
    }

    es_trt_progress_fn forward_;
    void* user_;
    std::mutex mutex_;
    std::atomic<bool> cancelled_{false};
};
#else
// Replays a cache written by an earlier calibration run instead of
// calibrating again. TensorRT 10 deprecates calibrators and 11 removes them:
// there INT8 comes only from the model's Q/DQ nodes.
class CacheCalibrator final : public nvinfer1::IInt8EntropyCalibrator2 {
public:
    CacheCalibrator(void const* data, size_t size) : data_(data), size_(size) {}

    // Explicit-batch networks must report 1.
    int32_t getBatchSize() const noexcept override { return 1; }

    // No batches: the cache holds every scale TensorRT asks for.
    bool getBatch(void*[], char const*[], int32_t) noexcept override { return false; }

    void const* readCalibrationCache(size_t& length) noexcept override {
        length = size_;
        return data_;
    }

    void writeCalibrationCache(void const*, size_t) noexcept override {}

private:
    void const* data_;
    size_t size_;
};
#endif

} // namespace

struct es_trt_lib {
    es_trt_create_fn create_builder;
    es_trt_create_fn create_runtime;
    es_trt_create_parser_fn create_parser;
    Logger logger;
};

struct es_trt_blob {
    std::unique_ptr<nvinfer1::IHostMemory> memory;
};

struct es_trt_runtime {
    es_trt_lib* lib;
    std::unique_ptr<nvinfer1::IRuntime> runtime;
};

struct es_trt_engine {
    es_trt_lib* lib;
    std::unique_ptr<nvinfer1::ICudaEngine> engine;
};

struct es_trt_context {
    es_trt_lib* lib;
    std::unique_ptr<nvinfer1::IExecutionContext> context;
};

namespace {

std::unique_ptr<nvinfer1::IBuilder> create_builder(es_trt_lib* lib) {
    return std::unique_ptr<nvinfer1::IBuilder>(
        static_cast<nvinfer1::IBuilder*>(lib->create_builder(&lib->logger, library_version())));
}

int32_t parse_onnx(es_trt_lib* lib, nvinfer1::INetworkDefinition& network, char const* path,
    std::unique_ptr<nvonnxparser::IParser>& parser, char** error) {
    parser.reset(static_cast<nvonnxparser::IParser*>(
        lib->create_parser(&network, &lib->logger, NV_ONNX_PARSER_VERSION)));
    if (!parser) {
        return fail(error, "createNvOnnxParser failed");
    }
    uint64_t const mark = lib->logger.mark();
    if (parser->parseFromFile(path, static_cast<int>(Severity::kINFO))) {
        return ES_TRT_OK;
    }
    // One error a line. Only desc() and node() are used: nodeName() and
    // friends exist in newer parsers only, and a vtable slot the installed
    // library lacks would crash.
    std::string errors;
    for (int i = 0; i < parser->getNbErrors(); ++i) {
        nvonnxparser::IParserError const* e = parser->getError(i);
        if (e == nullptr) {
            continue;
        }
        errors += errors.empty() ? "" : "\n";
        if (e->node() >= 0) {
            errors += "node " + std::to_string(e->node()) + ": ";
        }
        errors += e->desc() != nullptr ? e->desc() : "unknown error";
    }
    if (errors.empty()) {
        errors = with_log("the parser gave no reason", lib->logger.errors_since(mark));
    }
    return fail(error, errors, ES_TRT_PARSE_FAILED);
}

int32_t add_profile(nvinfer1::IBuilder& builder, nvinfer1::IBuilderConfig& config,
    es_trt_build_options const& o, char** error) {
    using nvinfer1::OptProfileSelector;
    nvinfer1::IOptimizationProfile* profile = builder.createOptimizationProfile();
    if (profile == nullptr) {
        return fail(error, "createOptimizationProfile failed");
    }
    std::pair<OptProfileSelector, int64_t const*> const corners[] = {
        {OptProfileSelector::kMIN, o.profile_min},
        {OptProfileSelector::kOPT, o.profile_opt},
        {OptProfileSelector::kMAX, o.profile_max},
    };
    for (auto const& corner : corners) {
        nvinfer1::Dims dims{};
        std::string why;
        if (!to_dims(o.profile_rank, corner.second, dims, why)) {
            return fail(error, std::string("profile for ") + o.profile_input + ": " + why);
        }
        if (!profile->setDimensions(o.profile_input, corner.first, dims)) {
            return fail(error, std::string("profile shapes rejected for input ") + o.profile_input);
        }
    }
    if (config.addOptimizationProfile(profile) < 0) {
        return fail(error, std::string("profile for input ") + o.profile_input + " is invalid");
    }
    return ES_TRT_OK;
}

int32_t set_precision(es_trt_build_options const& o, nvinfer1::IBuilderConfig& config, char** error) {
    using nvinfer1::BuilderFlag;
    if (o.strongly_typed != 0 && o.precision != ES_TRT_PRECISION_FP32) {
        return fail(error, "a strongly typed network takes its precision from the model; ask for FP32");
    }
    switch (o.precision) {
    case ES_TRT_PRECISION_FP32:
        break;
    case ES_TRT_PRECISION_INT8:
        config.setFlag(BuilderFlag::kINT8);
        // Layers the model leaves unquantised run in FP16 rather than FP32.
        config.setFlag(BuilderFlag::kFP16);
        break;
    case ES_TRT_PRECISION_FP16:
        config.setFlag(BuilderFlag::kFP16);
        break;
    default:
        return fail(error, "unknown precision " + std::to_string(o.precision));
    }
    if (o.calibration_cache_size > 0 && o.precision != ES_TRT_PRECISION_INT8) {
        return fail(error, "a calibration cache only makes sense for INT8");
    }
#if NV_TENSORRT_MAJOR >= 10
    // Calibrators are deprecated in 10.x: INT8 must come from Q/DQ nodes.
    if (o.calibration_cache_size > 0) {
        return fail(error, "TensorRT 10 does not take calibration caches; export the model with Q/DQ nodes");
    }
#endif
    return ES_TRT_OK;
}

// Starts from the given cache; one from another device or TensorRT version
// is dropped with a warning, since the cache only saves build time.
int32_t set_timing_cache(es_trt_lib* lib, es_trt_build_options const& o, nvinfer1::IBuilderConfig& config,
    std::unique_ptr<nvinfer1::ITimingCache>& cache, char** error) {
    cache.reset(config.createTimingCache(o.timing_cache, o.timing_cache_size));
    if (cache && config.setTimingCache(*cache, false)) {
        return ES_TRT_OK;
    }
    if (o.timing_cache_size > 0) {
        lib->logger.log(Severity::kWARNING, "edgesort: timing cache does not fit this device or TensorRT; starting a new one");
        cache.reset(config.createTimingCache(nullptr, 0));
        if (cache && config.setTimingCache(*cache, false)) {
            return ES_TRT_OK;
        }
    }
    return fail(error, "cannot create a timing cache");
}

} // namespace

extern "C" {

int32_t es_trt_header_version(void) {
    return NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
}

int32_t es_trt_init(es_trt_create_fn create_builder, es_trt_create_fn create_runtime,
    es_trt_create_parser_fn create_parser, es_trt_log_fn log, void* log_user, es_trt_lib** out, char** error) {
    return guarded(error, "init", [&]() -> int32_t {
        if (create_builder == nullptr || create_runtime == nullptr || out == nullptr) {
            return fail(error, "init: missing factory function");
        }
        *out = new es_trt_lib{create_builder, create_runtime, create_parser, Logger(log, log_user)};
        return ES_TRT_OK;
    });
}

void es_trt_free(es_trt_lib* lib) {
    delete lib;
}

void es_trt_string_free(char* string) {
    std::free(string);
}

int32_t es_trt_dla_cores(es_trt_lib* lib, int32_t* out, char** error) {
    return guarded(error, "count DLA cores", [&]() -> int32_t {
        uint64_t const mark = lib->logger.mark();
        auto builder = create_builder(lib);
        if (!builder) {
            return fail(error, with_log("createInferBuilder failed", lib->logger.errors_since(mark)));
        }
        *out = builder->getNbDLACores();
        return ES_TRT_OK;
    });
}

int32_t es_trt_build(es_trt_lib* lib, es_trt_build_options const* options, es_trt_blob** plan_out,
    es_trt_blob** timing_cache_out, char** error) {
    return guarded(error, "build", [&]() -> int32_t {
        es_trt_build_options const& o = *options;
        *plan_out = nullptr;
        *timing_cache_out = nullptr;
        if (lib->create_parser == nullptr) {
            return fail(error, "the ONNX parser (libnvonnxparser) is not loaded");
        }
        uint64_t const mark = lib->logger.mark();
        auto why = [&](char const* what) { return fail(error, with_log(what, lib->logger.errors_since(mark))); };

        auto builder = create_builder(lib);
        if (!builder) {
            return why("createInferBuilder failed");
        }
        nvinfer1::NetworkDefinitionCreationFlags flags = 0;
#if NV_TENSORRT_MAJOR >= 10
        // Explicit batch is implied in 10.x (its flag is deprecated); strongly
        // typed networks are how TensorRT 11 wants INT8 and FP16.
        if (o.strongly_typed != 0) {
            flags |= 1U << static_cast<uint32_t>(nvinfer1::NetworkDefinitionCreationFlag::kSTRONGLY_TYPED);
        }
#else
        // 8.x defaults to implicit batch, which the ONNX parser rejects.
        if (o.strongly_typed != 0) {
            return fail(error, "strongly typed networks need TensorRT 10");
        }
        flags |= 1U << static_cast<uint32_t>(nvinfer1::NetworkDefinitionCreationFlag::kEXPLICIT_BATCH);
#endif
        std::unique_ptr<nvinfer1::INetworkDefinition> network(builder->createNetworkV2(flags));
        if (!network) {
            return why("createNetworkV2 failed");
        }
        // Declared before the config so that they outlive it.
        std::unique_ptr<nvonnxparser::IParser> parser;
        std::unique_ptr<nvinfer1::ITimingCache> timing_cache;
#if NV_TENSORRT_MAJOR >= 10
        Progress progress(o.progress, o.progress_user);
#else
        CacheCalibrator calibrator(o.calibration_cache, o.calibration_cache_size);
#endif
        int32_t status = parse_onnx(lib, *network, o.onnx_path, parser, error);
        if (status != ES_TRT_OK) {
            return status;
        }
        std::unique_ptr<nvinfer1::IBuilderConfig> config(builder->createBuilderConfig());
        if (!config) {
            return why("createBuilderConfig failed");
        }
        if ((status = set_precision(o, *config, error)) != ES_TRT_OK) {
            return status;
        }
#if NV_TENSORRT_MAJOR < 10
        if (o.calibration_cache_size > 0) {
            config->setInt8Calibrator(&calibrator);
        }
#endif
        if (o.workspace_bytes > 0) {
            config->setMemoryPoolLimit(nvinfer1::MemoryPoolType::kWORKSPACE, static_cast<size_t>(o.workspace_bytes));
        }
        if (o.dla_core >= 0) {
            int32_t const cores = builder->getNbDLACores();
            if (o.dla_core >= cores) {
                return fail(error, "DLA core " + std::to_string(o.dla_core) + " asked for, but this device has " +
                                       std::to_string(cores));
            }
            config->setDefaultDeviceType(nvinfer1::DeviceType::kDLA);
            config->setDLACore(o.dla_core);
            if (o.gpu_fallback != 0) {
                config->setFlag(nvinfer1::BuilderFlag::kGPU_FALLBACK);
            }
        }
        if (o.profile_input != nullptr && (status = add_profile(*builder, *config, o, error)) != ES_TRT_OK) {
            return status;
        }
        if ((status = set_timing_cache(lib, o, *config, timing_cache, error)) != ES_TRT_OK) {
            return status;
        }
#if NV_TENSORRT_MAJOR >= 10
        if (o.progress != nullptr) {
            config->setProgressMonitor(&progress);
        }
#endif

        std::unique_ptr<nvinfer1::IHostMemory> plan(builder->buildSerializedNetwork(*network, *config));
        if (!plan) {
#if NV_TENSORRT_MAJOR >= 10
            if (progress.cancelled()) {
                return fail(error, "build cancelled", ES_TRT_CANCELLED);
            }
#endif
            return why("buildSerializedNetwork failed");
        }
        nvinfer1::ITimingCache const* used = config->getTimingCache();
        std::unique_ptr<nvinfer1::IHostMemory> cache_bytes(used != nullptr ? used->serialize() : nullptr);
        *plan_out = new es_trt_blob{std::move(plan)};
        *timing_cache_out = new es_trt_blob{std::move(cache_bytes)};
        return ES_TRT_OK;
    });
}

void const* es_trt_blob_data(es_trt_blob const* blob) {
    return blob != nullptr && blob->memory ? blob->memory->data() : nullptr;
}

size_t es_trt_blob_size(es_trt_blob const* blob) {
    return blob != nullptr && blob->memory ? blob->memory->size() : 0;
}

void es_trt_blob_free(es_trt_blob* blob) {
    delete blob;
}

int32_t es_trt_runtime_create(es_trt_lib* lib, int32_t dla_core, es_trt_runtime** out, char** error) {
    return guarded(error, "create runtime", [&]() -> int32_t {
        uint64_t const mark = lib->logger.mark();
        std::unique_ptr<nvinfer1::IRuntime> runtime(
            static_cast<nvinfer1::IRuntime*>(lib->create_runtime(&lib->logger, library_version())));
        if (!runtime) {
            return fail(error, with_log("createInferRuntime failed", lib->logger.errors_since(mark)));
        }
        if (dla_core >= 0) {
            int32_t const cores = runtime->getNbDLACores();
            if (dla_core >= cores) {
                return fail(error, "DLA core " + std::to_string(dla_core) + " asked for, but this device has " +
                                       std::to_string(cores));
            }
            runtime->setDLACore(dla_core);
        }
        *out = new es_trt_runtime{lib, std::move(runtime)};
        return ES_TRT_OK;
    });
}

void es_trt_runtime_free(es_trt_runtime* runtime) {
    delete runtime;
}

int32_t es_trt_deserialize(es_trt_runtime* runtime, void const* plan, size_t size, es_trt_engine** out, char** error) {
    return guarded(error, "deserialize", [&]() -> int32_t {
        es_trt_lib* lib = runtime->lib;
        uint64_t const mark = lib->logger.mark();
        // The two-argument form: the one taking an IPluginFactory is deprecated in 8.x.
        std::unique_ptr<nvinfer1::ICudaEngine> engine(runtime->runtime->deserializeCudaEngine(plan, size));
        if (!engine) {
            return fail(error, with_log("deserializeCudaEngine failed", lib->logger.errors_since(mark)));
        }
        *out = new es_trt_engine{lib, std::move(engine)};
        return ES_TRT_OK;
    });
}

void es_trt_engine_free(es_trt_engine* engine) {
    delete engine;
}

// Named I/O tensors (8.5+) throughout: the binding-index API is deprecated in
// the 8.6 headers, fails -Werror there, and is gone in 10.x.
int32_t es_trt_engine_io_count(es_trt_engine const* engine) {
    return engine->engine->getNbIOTensors();
}

int32_t es_trt_engine_io_tensor(es_trt_engine const* engine, int32_t index, char const** name, int32_t* is_input,
    int32_t* data_type, int32_t* rank, int64_t* dims, char** error) {
    return guarded(error, "inspect I/O tensor", [&]() -> int32_t {
        nvinfer1::ICudaEngine const& e = *engine->engine;
        char const* tensor = e.getIOTensorName(index);
        if (tensor == nullptr) {
            return fail(error, "no I/O tensor at index " + std::to_string(index));
        }
        nvinfer1::Dims const shape = e.getTensorShape(tensor);
        if (shape.nbDims < 0 || shape.nbDims > nvinfer1::Dims::MAX_DIMS) {
            return fail(error, std::string("tensor ") + tensor + " has no valid shape");
        }
        *name = tensor;
        *is_input = e.getTensorIOMode(tensor) == nvinfer1::TensorIOMode::kINPUT ? 1 : 0;
        *data_type = static_cast<int32_t>(e.getTensorDataType(tensor));
        *rank = shape.nbDims;
        for (int32_t i = 0; i < shape.nbDims; ++i) {
            dims[i] = static_cast<int64_t>(shape.d[i]);
        }
        return ES_TRT_OK;
    });
}

int32_t es_trt_context_create(es_trt_engine* engine, es_trt_context** out, char** error) {
    return guarded(error, "create execution context", [&]() -> int32_t {
        es_trt_lib* lib = engine->lib;
        uint64_t const mark = lib->logger.mark();
        std::unique_ptr<nvinfer1::IExecutionContext> context(engine->engine->createExecutionContext());
        if (!context) {
            return fail(error, with_log("createExecutionContext failed", lib->logger.errors_since(mark)));
        }
        *out = new es_trt_context{lib, std::move(context)};
        return ES_TRT_OK;
    });
}

void es_trt_context_free(es_trt_context* context) {
    delete context;
}

int32_t es_trt_context_set_input_shape(
    es_trt_context* context, char const* name, int32_t rank, int64_t const* dims, char** error) {
    return guarded(error, "set input shape", [&]() -> int32_t {
        nvinfer1::Dims shape{};
        std::string why;
        if (!to_dims(rank, dims, shape, why)) {
            return fail(error, why);
        }
        uint64_t const mark = context->lib->logger.mark();
        if (!context->context->setInputShape(name, shape)) {
            return fail(error, with_log("setInputShape failed", context->lib->logger.errors_since(mark)));
        }
        return ES_TRT_OK;
    });
}

int32_t es_trt_context_tensor_shape(
    es_trt_context const* context, char const* name, int32_t* rank, int64_t* dims, char** error) {
    return guarded(error, "read tensor shape", [&]() -> int32_t {
        nvinfer1::Dims const shape = context->context->getTensorShape(name);
        if (shape.nbDims < 0 || shape.nbDims > nvinfer1::Dims::MAX_DIMS) {
            return fail(error, std::string("tensor ") + name + " has no shape yet (are all input shapes set?)");
        }
        *rank = shape.nbDims;
        for (int32_t i = 0; i < shape.nbDims; ++i) {
            dims[i] = static_cast<int64_t>(shape.d[i]);
        }
        return ES_TRT_OK;
    });
}

int32_t es_trt_context_set_tensor_address(es_trt_context* context, char const* name, void* device_ptr, char** error) {
    return guarded(error, "set tensor address", [&]() -> int32_t {
        uint64_t const mark = context->lib->logger.mark();
        if (!context->context->setTensorAddress(name, device_ptr)) {
            return fail(error, with_log("setTensorAddress failed", context->lib->logger.errors_since(mark)));
        }
        return ES_TRT_OK;
    });
}

int32_t es_trt_context_enqueue(es_trt_context* context, void* stream, char** error) {
    return guarded(error, "enqueue", [&]() -> int32_t {
        uint64_t const mark = context->lib->logger.mark();
        // cudaStream_t is a pointer typedef (CUstream_st*), so void* carries it.
        if (!context->context->enqueueV3(static_cast<cudaStream_t>(stream))) {
            return fail(error, with_log("enqueueV3 failed", context->lib->logger.errors_since(mark)));
        }
        return ES_TRT_OK;
    });
}

} // extern "C"
