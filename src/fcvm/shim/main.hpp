#pragma once
// containerd-shim-fcvm-v2: the runtime v2 shim binary's main (containerd runs it for the
// runtime io.containerd.fcvm.v2).
//
//   start   (cwd: the bundle) creates the shim's socket, starts the long-lived server with the
//           listener as fd 3 and no stdio, writes ./address and prints only the address.
//   delete  (cwd: the bundle) after the shim ended or died: removes the task's VM (idempotent)
//           and prints a containerd.task.v2.DeleteResponse.
//   serve   the server (started by `start`): the Task service on fd 3 until Shutdown.
// Flags as containerd passes them (Go's flag syntax): -namespace NS -address A
// -publish-binary B -id ID [-bundle DIR] [-debug] [-socket PATH].
namespace fcvm::shim {

int shim_main(int argc, char** argv);

}  // namespace fcvm::shim
