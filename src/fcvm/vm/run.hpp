#pragma once
#include "fcvm/util/result.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/options.hpp"

namespace fcvm::vm {

// `fcvm run` in the foreground: boots a VM for the options, streams the container's stdout and
// stderr to ours, stops the VM cleanly on SIGINT/SIGTERM/SIGHUP (a second signal kills it) and
// returns the container's exit code. Everything it creates is removed before it returns, on
// success and on failure.
Result<int> run_foreground(Context& ctx, const RunOptions& options);

}  // namespace fcvm::vm
