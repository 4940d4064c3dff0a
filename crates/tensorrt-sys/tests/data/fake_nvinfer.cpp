// A stand-in for libnvinfer and libnvonnxparser with the four entry points
// edgesort loads: it reports FAKE_VERSION, logs through the logger it is
// given, and creates nothing, the way TensorRT fails on a box without a GPU.
// Compiled by tests/fake_library.rs, once as each library.

#include <NvInfer.h>

namespace {
void say(void* logger, nvinfer1::ILogger::Severity severity, char const* message) {
    static_cast<nvinfer1::ILogger*>(logger)->log(severity, message);
}
} // namespace

extern "C" int32_t getInferLibVersion() noexcept {
    return FAKE_VERSION;
}

extern "C" void* createInferBuilder_INTERNAL(void* logger, int32_t version) noexcept {
    using Severity = nvinfer1::ILogger::Severity;
    say(logger, Severity::kWARNING, "Requested amount of GPU memory (1073741824 bytes) could not be allocated.");
    say(logger, Severity::kERROR, version == NV_TENSORRT_VERSION ? "fake builder: no GPU" : "fake builder: wrong version");
    return nullptr;
}

extern "C" void* createInferRuntime_INTERNAL(void* logger, int32_t version) noexcept {
    say(logger, nvinfer1::ILogger::Severity::kERROR,
        version == NV_TENSORRT_VERSION ? "fake runtime: no GPU" : "fake runtime: wrong version");
    return nullptr;
}

extern "C" void* createNvOnnxParser_INTERNAL(void*, void*, int) {
    return nullptr;
}
