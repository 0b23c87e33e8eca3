#pragma once
// A Kubernetes pod's sandbox under fcvm: CRI creates it as a task of its own (the "pause"
// container, annotation io.kubernetes.cri.container-type=sandbox) before the pod's container.
// fcvm runs each container in a VM of its own, so the sandbox needs none: it is a placeholder
// task in the shim that runs until it is killed (as pause does), with the shim as its pid.
#include <memory>

#include "fcvm/shim/engine.hpp"

namespace fcvm::shim {

inline constexpr const char* k_annotation_container_type = "io.kubernetes.cri.container-type";

bool is_pod_sandbox(const ContainerSpec& spec);
std::unique_ptr<Engine> make_sandbox_engine();

}  // namespace fcvm::shim
