#pragma once
// What a containerd bundle asks for, checked: the OCI runtime spec (config.json), the process of
// an exec, the rootfs mounts and the runtime options. Everything here is pure (no VM, no I/O
// besides reading config.json), so that it is unit-tested and fuzzed as a decoder.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fcvm/util/result.hpp"

namespace fcvm::shim {

// An OCI process (config.json's `process`, or an exec's spec).
struct ProcessSpec {
  std::vector<std::string> args;
  std::vector<std::string> env{};  // K=V
  std::string cwd = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool terminal = false;
};

// process.rlimits: RLIMIT_NOFILE -> "nofile"; RLIM_INFINITY (or anything above INT64_MAX) -> -1.
struct Rlimit {
  std::string name;
  int64_t soft = 0;
  int64_t hard = 0;
};

struct ContainerSpec {
  ProcessSpec process;
  std::vector<Rlimit> rlimits{};
  std::string hostname{};
  bool readonly_root = false;
  std::map<std::string, std::string> annotations{};
  int mem_mib = 0;  // fcvm.io/mem (0: fcvm's default)
  int vcpus = 0;    // fcvm.io/cpu (0: fcvm's default)
};

// The annotations that size the VM (pod annotations CRI passes through with
// pod_annotations = ["fcvm.io/*"]).
inline constexpr const char* k_annotation_mem = "fcvm.io/mem";
inline constexpr const char* k_annotation_cpu = "fcvm.io/cpu";

// config.json. kInvalidInput names the field and value for what fcvm cannot honour: no args, a
// bind mount of a host path other than the name files containerd and CRI provide (the VM has its
// own), a bad annotation, an unknown JSON type.
Result<ContainerSpec> parse_container_spec(const std::string& config_json);
Result<ProcessSpec> parse_process_spec(const std::string& process_json);

// A rootfs mount as containerd passes it (containerd.types.Mount).
struct MountSpec {
  std::string type;
  std::string source;
  std::vector<std::string> options{};
};

// The directories of the container's root filesystem: an overlay's lower dirs (top first) and its
// upper dir (empty at first; what a container wrote before, when it was created again), or a bind
// mount's source. Unknown mount types and options fcvm cannot read are kInvalidInput naming them.
struct RootfsLayers {
  std::vector<std::string> lower;  // top first
  std::string upper{};
};
Result<RootfsLayers> rootfs_layers(const std::vector<MountSpec>& mounts);

// The runtime options' type (CreateTaskRequest.options' type_url): empty, or containerd's
// runtimeoptions (CRI's `options` table: config_path), which fcvm accepts; any other is
// kInvalidInput naming it.
Result<> check_runtime_options(const std::string& type_url);

// A name for the VM of containerd's (namespace, id): "NS-ID" when that is a valid VM name,
// else shortened with a hash of both so that it stays unique.
std::string vm_name_for(const std::string& ns, const std::string& id);

}  // namespace fcvm::shim
