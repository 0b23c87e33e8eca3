// What containerd hands the shim, from a bundle anyone can write: config.json (the OCI runtime
// spec), an exec's process spec, and the rootfs mounts' options. The first byte picks the
// decoder; errors are fine, crashes and undefined behaviour are not, and a spec that decodes
// holds a command and an absolute working directory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fcvm/shim/bundle.hpp"
#include "fcvm/util/strings.hpp"

using namespace fcvm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto spec = shim::parse_container_spec(text);
      if (spec && (spec->process.args.empty() || spec->process.cwd.empty() ||
                   spec->process.cwd[0] != '/')) {
        std::abort();
      }
      break;
    }
    case 1: {
      auto p = shim::parse_process_spec(text);
      if (p && p->args.empty()) std::abort();
      break;
    }
    default: {
      // Mount options, one per line; the first line is the mount type.
      std::vector<std::string> lines;
      for (auto l : split(text, '\n')) lines.emplace_back(l);
      shim::MountSpec m;
      if (!lines.empty()) m.type = lines[0];
      if (lines.size() > 1) m.source = lines[1];
      for (size_t i = 2; i < lines.size(); ++i) m.options.push_back(lines[i]);
      auto layers = shim::rootfs_layers({m});
      if (layers) {
        for (const auto& l : layers->lower) {
          if (l.empty() || l[0] != '/') std::abort();
        }
      }
      break;
    }
  }
  return 0;
}
