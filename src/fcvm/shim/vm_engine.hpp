#pragma once
// The Task service's VM: fcvm's engine (vm::), as `fcvm run` drives it. The root filesystem's
// layers become a stored image (a read-only disk built once per layer chain, image::import_layers);
// the VM is an ordinary fcvm VM (`fcvm ls` shows it, labelled containerd.namespace and
// containerd.id) whose monitor holds the container until Start attaches to it.
#include <memory>
#include <string>

#include "fcvm/shim/engine.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/validate.hpp"

namespace fcvm::shim {

inline constexpr const char* k_label_namespace = "containerd.namespace";
inline constexpr const char* k_label_id = "containerd.id";

// The sha256 of a layer chain: the id of its stored image ("sha256:HEX").
std::string layers_image_id(const std::vector<std::string>& layers);

std::unique_ptr<Engine> make_vm_engine(vm::Context ctx, vm::RunDefaults defaults);

// `delete` after a shim died: the VM of (ns, id) is removed, whatever state it is in. Its exit
// code when it recorded one (else 137: it was killed); nullopt when there was no VM.
Result<std::optional<int>> remove_task_vm(vm::Context& ctx, const std::string& ns,
                                          const std::string& id);

}  // namespace fcvm::shim
