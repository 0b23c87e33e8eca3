// The configuration file (YAML): any text gives a configuration or one error, never a crash or
// an exception out of yaml-cpp.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fcvm/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)fcvm::config::parse(text, "fuzz.yml");
  return 0;
}
