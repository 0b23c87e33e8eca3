#include "fcvm/shim/vm_engine.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "fcvm/image/oci.hpp"
#include "fcvm/image/store.hpp"
#include "fcvm/state/image_store.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/control_client.hpp"
#include "fcvm/vm/events.hpp"
#include "fcvm/vm/images.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::shim {
namespace {

using namespace std::chrono_literals;

// How long a VM may take to boot beyond its monitor's own deadlines (--boot-timeout, twice: a
// hung first boot is booted once more): setting up its disk and network.
constexpr auto k_boot_margin = 60s;

// The monitor is this process's child: reaped when it ends, so that it leaves no zombie.
void reap_in_background(pid_t pid) {
  std::thread([pid] {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }).detach();
}

// Opens one of containerd's FIFOs (it holds the other end open already, or opens it now).
Result<UniqueFd> open_fifo(const std::string& path, int flags) {
  if (path.empty()) return UniqueFd();
  for (;;) {
    UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
    if (fd) return fd;
    if (errno == EINTR) continue;
    return fail_errno(fmt::format("open {}", path));
  }
}

struct OpenedIo {
  UniqueFd in, out, err, null_in, null_out;
  vm::Stdio stdio() const {
    return {in ? in.get() : null_in.get(), out ? out.get() : null_out.get(),
            err ? err.get() : (out ? out.get() : null_out.get())};
  }
};

Result<OpenedIo> open_io(const IoPaths& io) {
  OpenedIo o;
  o.null_in.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  o.null_out.reset(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  FCVM_TRY_ASSIGN(o.out, open_fifo(io.out, O_WRONLY));
  FCVM_TRY_ASSIGN(o.err, open_fifo(io.err, O_WRONLY));
  // Non-blocking: containerd opens the writing end only when it has input to give (ctr -i). Until
  // a writer came and went, poll() reports nothing on it, so the attach loop neither reads an
  // early end of file nor blocks.
  FCVM_TRY_ASSIGN(o.in, open_fifo(io.in, O_RDONLY | O_NONBLOCK));
  return o;
}

std::string user_spec(const ProcessSpec& p) { return fmt::format("{}:{}", p.uid, p.gid); }

class VmEngine final : public Engine {
 public:
  VmEngine(vm::Context ctx, vm::RunDefaults defaults)
      : m_ctx(std::move(ctx)), m_defaults(std::move(defaults)) {}

  ~VmEngine() override = default;

  Result<uint32_t> create(const CreateParams& params) override {
    FCVM_TRY_ASSIGN(auto store, vm::open_store(m_ctx));
    // 1. The root filesystem: one stored image per layer chain.
    image::LayersImport import;
    import.layers = params.layers;
    // An upper dir with earlier writes (a container created again) is part of its root.
    std::error_code ec;
    if (!params.upper.empty() && !std::filesystem::is_empty(params.upper, ec) && !ec) {
      import.layers.insert(import.layers.begin(), params.upper);
    }
    import.id = layers_image_id(import.layers);
    import.name =
        fmt::format("localhost/containerd-rootfs:{}", image::digest_hex(import.id).substr(0, 16));
    import.config_json = R"({"architecture":"amd64","os":"linux","config":{}})";
    state::ImageStore rows(store.db());
    auto stored =
        image::import_layers(vm::image_layout(m_ctx), rows, import, [&](std::string_view step) {
          FCVM_LOG(kInfo, "shim", "rootfs of {}: {}", params.id, step);
        });
    if (!stored) return tl::unexpected(stored.error().wrap("the container's root filesystem"));

    // 2. The VM, as `fcvm run -d` would create it.
    const auto& p = params.spec.process;
    vm::RunRequest req;
    req.name = vm_name_for(params.ns, params.id);
    req.image_and_command = {import.name};
    req.image_and_command.insert(req.image_and_command.end(), p.args.begin(), p.args.end());
    req.env = p.env;
    req.workdir = p.cwd;
    req.user = user_spec(p);
    req.tty = params.io.terminal;
    req.interactive = !params.io.in.empty();
    req.detach = true;
    req.read_only = params.spec.readonly_root;
    for (const auto& r : params.spec.rlimits) {
      req.ulimits.push_back(fmt::format("{}={}:{}", r.name, r.soft, r.hard));
    }
    if (!params.spec.hostname.empty()) req.hostname = params.spec.hostname;
    req.labels = {fmt::format("{}={}", k_label_namespace, params.ns),
                  fmt::format("{}={}", k_label_id, params.id)};
    if (params.spec.mem_mib > 0) req.mem = std::to_string(params.spec.mem_mib);
    if (params.spec.vcpus > 0) req.cpu = std::to_string(params.spec.vcpus);
    auto no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    FCVM_TRY_ASSIGN(auto options, vm::validate_run(req, m_defaults, no_env));
    FCVM_TRY(vm::check_run(m_ctx, store, options));
    FCVM_TRY(vm::resolve_image(m_ctx, store, options, [](std::string_view) {}));
    FCVM_TRY_ASSIGN(auto rec, vm::create_vm(m_ctx, store, options, /*auto_remove=*/false));

    // 3. Boot it; the container waits for run().
    auto journal = vm::JournalFollower::open(vm::journal_path(m_ctx.paths.data_dir));
    if (!journal) return tl::unexpected(journal.error());
    vm::SpawnMonitorOptions launch;
    launch.fresh = true;
    launch.wait_attach = true;
    launch.hold = true;
    auto monitor = vm::spawn_monitor(m_ctx, rec, launch);
    if (!monitor) {
      (void)vm::remove_vm(store, rec, true);
      return tl::unexpected(monitor.error());
    }
    pid_t pid = monitor->process.detach();
    reap_in_background(pid);
    {
      std::lock_guard lock(m_mutex);
      m_rec = rec;
      m_ready = std::move(monitor->ready);
    }
    auto budget = 2 * std::chrono::seconds(options.boot_timeout_s) + k_boot_margin;
    auto deadline = std::chrono::steady_clock::now() + budget;
    for (;;) {
      auto events = journal->next(250);
      if (!events) return tl::unexpected(events.error());
      for (const auto& e : *events) {
        if (e.vm_id != rec.id) continue;
        if (e.type == vm::EventType::kBooted) return static_cast<uint32_t>(pid);
        if (e.type == vm::EventType::kExited || e.type == vm::EventType::kRemoved) {
          auto why = vm::wait_ready(m_ready.get(), rec);
          return fail(ErrorCode::kSystem, fmt::format("VM {} did not boot: {}", rec.name,
                                                      why ? e.detail : why.error().message()));
        }
      }
      if (auto r = wait_readable(m_ready.get(), 0ms); r && *r) {
        auto why = vm::wait_ready(m_ready.get(), rec);
        return fail(ErrorCode::kSystem,
                    fmt::format("VM {} did not boot: {}", rec.name,
                                why ? "its monitor ended" : why.error().message()));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        (void)remove();
        return fail(ErrorCode::kTimeout,
                    fmt::format("VM {} did not boot within {} s", rec.name, budget.count()));
      }
    }
  }

  Result<int> run(const IoPaths& io, vm::ExecControl& control,
                  const std::function<void(Result<>)>& started) override {
    state::VmRecord rec;
    int ready = -1;
    {
      std::lock_guard lock(m_mutex);
      rec = m_rec;
      ready = m_ready.get();
    }
    std::once_flag once;
    auto report = [&](Result<> r) { std::call_once(once, [&] { started(std::move(r)); }); };
    auto opened = open_io(io);
    if (!opened) {
      report(tl::unexpected(opened.error()));
      return tl::unexpected(opened.error());
    }
    // "running" in the journal: the container started.
    auto journal = vm::JournalFollower::open(vm::journal_path(m_ctx.paths.data_dir));
    if (!journal) {
      report(tl::unexpected(journal.error()));
      return tl::unexpected(journal.error());
    }
    std::atomic<bool> done{false};
    std::thread watcher([&] {
      while (!done) {
        auto events = journal->next(200);
        if (!events) break;
        for (const auto& e : *events) {
          if (e.vm_id != rec.id) continue;
          if (e.type == vm::EventType::kRunning) {
            report({});
            return;
          }
          if (e.type == vm::EventType::kExited) {
            report(e.detail.empty() ? Result<>() : fail(ErrorCode::kSystem, e.detail));
            return;
          }
        }
      }
    });
    vm::AttachOptions options;
    options.interactive = !io.in.empty();
    options.tty = io.terminal;
    auto end = vm::attach_foreground(rec, ready, opened->stdio(), options, &control);
    done = true;
    watcher.join();
    if (!end) {
      report(tl::unexpected(end.error()));
      return tl::unexpected(end.error());
    }
    report({});
    return end->exit_code;  // the FIFOs close as `opened` goes
  }

  Result<int> exec(const ProcessSpec& process, const IoPaths& io,
                   vm::ExecControl& control) override {
    state::VmRecord rec;
    {
      std::lock_guard lock(m_mutex);
      rec = m_rec;
    }
    FCVM_TRY_ASSIGN(auto opened, open_io(io));
    vm::ExecRequest req;
    req.argv = process.args;
    req.env = process.env;
    req.workdir = process.cwd;
    req.user = user_spec(process);
    req.tty = process.terminal;
    req.interactive = !io.in.empty();
    return vm::exec_in_vm(rec, req, opened.stdio(), &control);
  }

  Result<> signal(int signo) override {
    FCVM_TRY_ASSIGN(auto store, vm::open_store(m_ctx));
    FCVM_TRY_ASSIGN(auto rec, current(store));
    return vm::signal_container(store, rec, std::to_string(signo));
  }

  Result<> kill_vm() override {
    FCVM_TRY_ASSIGN(auto store, vm::open_store(m_ctx));
    FCVM_TRY_ASSIGN(auto rec, current(store));
    if (!vm::is_active(rec)) return {};
    auto client = vm::ControlClient::connect(rec);
    if (!client) return tl::unexpected(client.error());
    return client->send(vm::control::Kill{});
  }

  Result<> pause(bool pause) override {
    FCVM_TRY_ASSIGN(auto store, vm::open_store(m_ctx));
    FCVM_TRY_ASSIGN(auto rec, current(store));
    return vm::pause_vm(store, rec, pause);
  }

  Result<> remove() override {
    FCVM_TRY_ASSIGN(auto store, vm::open_store(m_ctx));
    auto rec = current(store);
    if (!rec)
      return rec.error().code() == ErrorCode::kNotFound ? Result<>() : tl::unexpected(rec.error());
    return vm::remove_vm(store, *rec, /*force=*/true);
  }

 private:
  Result<state::VmRecord> current(state::VmStore& store) {
    std::string id;
    {
      std::lock_guard lock(m_mutex);
      id = m_rec.id;
    }
    if (id.empty()) return fail(ErrorCode::kNotFound, "the task has no VM");
    return vm::find_vm(store, id);
  }

  vm::Context m_ctx;
  vm::RunDefaults m_defaults;
  std::mutex m_mutex;
  state::VmRecord m_rec;
  UniqueFd m_ready;
};

}  // namespace

std::string layers_image_id(const std::vector<std::string>& layers) {
  std::string text = join(layers, "\n");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return "sha256:" + hex;
}

std::unique_ptr<Engine> make_vm_engine(vm::Context ctx, vm::RunDefaults defaults) {
  return std::make_unique<VmEngine>(std::move(ctx), std::move(defaults));
}

Result<std::optional<int>> remove_task_vm(vm::Context& ctx, const std::string& ns,
                                          const std::string& id) {
  FCVM_TRY_ASSIGN(auto store, vm::open_store(ctx));
  auto rec = vm::find_vm(store, vm_name_for(ns, id));
  if (!rec) {
    if (rec.error().code() == ErrorCode::kNotFound) return std::optional<int>();
    return tl::unexpected(rec.error());
  }
  int code = rec->exit_code && !vm::is_active(*rec) ? static_cast<int>(*rec->exit_code) : 137;
  FCVM_TRY(vm::remove_vm(store, *rec, /*force=*/true));
  return std::optional<int>(code);
}

}  // namespace fcvm::shim
