#pragma once
// Volumes: host data mapped into a VM (`--map HOST:GUEST[:ro][,mode=block|sshfs|nfs]`).
//
// Block mode, the default: the volume is a disk attached to the VM. A host directory gets an ext4
// image made from its contents at every start (the host directory is the truth while the VM is
// not running); when the guest shut down cleanly the image's files are written back into the
// directory, each file replaced atomically (rename), so the directory holds the old or the new
// state of every file and never a torn one. A host file is attached as it is (an image the user
// owns: never created, resized or deleted by fcvm).
#include <cstdint>
#include <string>
#include <vector>

#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::storage {

enum class VolumeMode { kBlock, kSshfs, kNfs };
std::string_view volume_mode_name(VolumeMode m);

struct VolumeMap {
  std::string host;   // absolute, as resolved when the VM was created
  std::string guest;  // absolute path in the container
  bool read_only = false;
  VolumeMode mode = VolumeMode::kBlock;
  bool host_is_dir = true;  // false: an image file (block mode only)

  std::string to_string() const;  // the canonical --map spelling
};

// Parses one --map value; the host path must exist (fcvm never creates it: a typo would otherwise
// silently become an empty volume). kInvalidInput names the bad value.
Result<VolumeMap> parse_volume_map(std::string_view text);
// No two maps share a guest path.
Result<> check_unique_guests(const std::vector<VolumeMap>& maps);
// "512M", "2G", "1024" (MiB) -> MiB.
Result<int64_t> parse_size_mib(std::string_view text);

// Bytes the files under dir take (allocated blocks), not following symlinks.
Result<uint64_t> tree_usage(const std::string& dir);
// The same walk, also counting the entries (files, directories, links) below dir.
struct TreeSize {
  uint64_t bytes = 0;
  uint64_t inodes = 0;
};
Result<TreeSize> tree_size(const std::string& dir);
// The image size for a directory: twice its data plus 256 MiB, at least 512 MiB (or size_mib).
uint64_t volume_image_size(uint64_t usage_bytes, int64_t size_mib);
// A new ext4 image at `image` (replacing any old one) holding dir's files, owners and modes.
Result<> create_volume_image(sys::CommandRunner& runner, const std::string& dir,
                             const std::string& image, uint64_t size_bytes);
// True when the ext4 image was unmounted cleanly (valid state, no journal to replay).
Result<bool> ext4_image_clean(const std::string& image);
// Writes the image's files back into target (a directory): extracted into `staging` (which must
// not exist), then merged: each file renamed over its counterpart (copied beside it first when
// staging is on another filesystem), directories created, entries gone from the image removed.
// lost+found at the image's top is not part of the data.
// check_fs: run `e2fsck -n -f` first (a cleanly unmounted image); off for a copy of a frozen,
// still mounted file system (consistent, but its journal flag is set). Nothing is merged unless
// the whole image came out.
Result<> sync_image_to_dir(sys::CommandRunner& runner, const std::string& image,
                           const std::string& target, const std::string& staging,
                           bool check_fs = true);
// The merge step alone (tests use it directly).
Result<> merge_tree(const std::string& from, const std::string& target);

// sshfs mode: the host serves the directory over SFTP on a byte channel to the guest, where sshfs
// (slave mode) mounts it. The server is OpenSSH's sftp-server in a bubblewrap sandbox whose whole
// file system is the server binary, the libraries it links (read-only) and the directory at
// /volume, so the guest can reach nothing else on the host.
// The sftp-server binary, or kUnavailable naming the packages to install.
Result<std::string> find_sftp_server();
// The sandboxed server's argv (pure; `libraries` are the absolute paths ldd lists).
std::vector<std::string> sftp_server_argv(const std::string& server,
                                          const std::vector<std::string>& libraries,
                                          const std::string& passwd, const std::string& dir,
                                          bool read_only);
// nfs mode (root, privileged networking): a per-VM NFSv4 server (NFS-Ganesha, user space, in the
// foreground, dying with the monitor) bound to the bridge address, exporting each directory to
// the VM's own address alone; the guest's kernel mounts it.
struct NfsExport {
  std::string dir;     // host directory
  std::string pseudo;  // path in the server's pseudo file system, e.g. /vol0
  bool read_only = false;
};
// The server's configuration (pure).
std::string nfs_server_config(const std::vector<NfsExport>& exports,
                              const std::string& bind_address, int port, const std::string& client,
                              const std::string& state_dir);
// ganesha.nfsd, or kUnavailable naming the packages.
Result<std::string> find_nfs_server();
// Starts the server on `config` and waits until it accepts connections on address:port.
Result<ChildProcess> spawn_nfs_server(const std::string& config, const std::string& address,
                                      int port, const std::string& log_path);

// Removes the .fuse_hidden* files under dir modified at or after since_ms (epoch ms): what sshfs
// leaves of files deleted while still open. Returns how many went.
Result<size_t> remove_fuse_hidden(const std::string& dir, int64_t since_ms);
// Starts the server with its stdin and stdout on `fd` (borrowed) and stderr into log_path.
Result<ChildProcess> spawn_sftp_server(sys::CommandRunner& runner, const std::string& dir,
                                       bool read_only, int fd, const std::string& log_path);

}  // namespace fcvm::storage
