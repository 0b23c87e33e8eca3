// FirecrackerBackend end to end against fake-firecracker: boot, agent conversation, stop, pause,
// snapshots, and the contract: every request the backend sends validates against the spec.
#include <gtest/gtest.h>

#include "support/firecracker_backend_fixture.hpp"

namespace fcvm::testing {
namespace {

using std::chrono::milliseconds;
using vmm::firecracker::FirecrackerBackend;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::vector<std::string> k_start_calls = {"PUT /logger",
                                                "PUT /metrics",
                                                "PUT /machine-config",
                                                "PUT /boot-source",
                                                "PUT /serial",
                                                "PUT /drives/fcvm_root",
                                                "PUT /drives/fcvm_data",
                                                "PUT /network-interfaces/eth0",
                                                "PUT /vsock",
                                                "PUT /mmds/config",
                                                "PUT /mmds",
                                                "PUT /actions"};

TEST_F(FirecrackerBackendTest, BootsTalksToTheAgentAndPowersOff) {
  set_env("FAKE_FC_EXIT_CODE", "7");
  FirecrackerBackend backend{fake_options()};
  auto spec = vm_spec(m_dir.path());
  ASSERT_TRUE(backend.start(spec)) << backend.start(spec).error().to_string();
  pid_t pid = backend.pid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(checked_calls(record_path()), k_start_calls);

  auto fd = backend.connect_agent(milliseconds(5000));
  ASSERT_TRUE(fd) << fd.error().to_string();
  auto c = converse(fd->get(), example_plan(), /*send_stop=*/false);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->events,
            (std::vector<std::string>{"network_ready", "image_ready", "container_started"}));
  EXPECT_TRUE(c->ready);
  EXPECT_EQ(c->out,
            "fake guest: running docker.io/library/busybox:latest\nfake guest: env GREETING=hi "
            "A=1\n");
  EXPECT_EQ(c->exit_code, 7);

  auto status = backend.wait_exit(milliseconds(5000));
  ASSERT_TRUE(status && *status);
  EXPECT_TRUE((*status)->exited);
  EXPECT_EQ((*status)->code, 0);
  EXPECT_TRUE(pid_gone(pid));
  EXPECT_EQ(sockets_in(m_dir.path()), std::vector<std::string>{});
  EXPECT_TRUE(contains(read_file(spec.vmm_log).value_or(""), "fake-firecracker vm-1"));
}

TEST_F(FirecrackerBackendTest, TheBootSourceCarriesTheKernelArguments) {
  FirecrackerBackend backend{fake_options()};
  ASSERT_TRUE(backend.start(vm_spec(m_dir.path())));
  for (const auto& line : read_json_lines(record_path())) {
    if (line["path"] != "/boot-source") continue;
    EXPECT_EQ(line["body"]["boot_args"],
              "console=ttyS0 reboot=k panic=1 pci=off fcvm.agent=vsock:1024 fcvm.mmds=1 "
              "fcvm.root=fcvm-root");  // the spec has a network and a plan: MMDS holds it
    EXPECT_EQ(line["body"]["initrd_path"], m_dir.file("initrd.img"));
  }
  for (const auto& line : read_json_lines(record_path())) {
    if (line["path"] == "/drives/fcvm_root") {
      EXPECT_EQ(line["body"]["is_root_device"], false);
    }
    if (line["path"] == "/drives/fcvm_data") {
      EXPECT_EQ(line["body"]["is_read_only"], true);
    }
    if (line["path"] == "/mmds") {
      EXPECT_EQ(line["body"]["fcvm"]["plan"]["image"]["ref"], "docker.io/library/busybox:latest");
    }
  }
  EXPECT_TRUE(backend.shutdown());
}

TEST_F(FirecrackerBackendTest, RunsUntilStopped) {
  set_env("FAKE_FC_RUN_UNTIL_STOP", "1");
  FirecrackerBackend backend{fake_options()};
  ASSERT_TRUE(backend.start(vm_spec(m_dir.path())));
  auto fd = backend.connect_agent(milliseconds(5000));
  ASSERT_TRUE(fd) << fd.error().to_string();
  auto c = converse(fd->get(), example_plan(), /*send_stop=*/true);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->exit_code, 143);
  auto status = backend.wait_exit(milliseconds(5000));
  ASSERT_TRUE(status && *status);
}

TEST_F(FirecrackerBackendTest, RetriesUntilTheAgentListens) {
  set_env("FAKE_FC_GUEST_DELAY_MS", "600");
  FirecrackerBackend backend{fake_options()};
  ASSERT_TRUE(backend.start(vm_spec(m_dir.path())));
  auto started = std::chrono::steady_clock::now();
  auto fd = backend.connect_agent(milliseconds(5000));
  ASSERT_TRUE(fd) << fd.error().to_string();
  EXPECT_GE(std::chrono::steady_clock::now() - started, milliseconds(400));
  EXPECT_TRUE(backend.shutdown());
}

TEST_F(FirecrackerBackendTest, ShutdownSendsCtrlAltDelAndCleansUp) {
  FirecrackerBackend backend{fake_options()};
  ASSERT_TRUE(backend.start(vm_spec(m_dir.path())));
  pid_t pid = backend.pid();
  auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(backend.shutdown());
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(2000));
  EXPECT_TRUE(pid_gone(pid));
  EXPECT_EQ(checked_calls(record_path()).back(), "PUT /actions");
  EXPECT_EQ(read_json_lines(record_path()).back()["body"]["action_type"], "SendCtrlAltDel");
  EXPECT_EQ(sockets_in(m_dir.path()), std::vector<std::string>{});
}

TEST_F(FirecrackerBackendTest, ConnectAgentFailsFastWhenTheVmmDies) {
  FirecrackerBackend backend{fake_options()};
  ASSERT_TRUE(backend.start(vm_spec(m_dir.path())));
  ::kill(backend.pid(), SIGKILL);
  auto started = std::chrono::steady_clock::now();
  auto fd = backend.connect_agent(milliseconds(10000));
  ASSERT_FALSE(fd);
  EXPECT_TRUE(contains(fd.error().message(), "firecracker exited")) << fd.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(3000));
}

// The contract: start, pause/resume, snapshot create, stop, snapshot load into a second VM; every
// request is valid per the spec and they come in the expected order.
TEST_F(FirecrackerBackendTest, EveryRequestOfTheLifecycleMatchesTheSpec) {
  auto mem = m_dir.file("snap.mem");
  auto state = m_dir.file("snap.state");
  {
    FirecrackerBackend backend{fake_options()};
    ASSERT_TRUE(backend.start(vm_spec(m_dir.path())));
    ASSERT_TRUE(backend.pause());
    ASSERT_TRUE(backend.resume());
    auto created = backend.snapshot_create(mem, state);
    ASSERT_TRUE(created) << created.error().to_string();
    ASSERT_TRUE(backend.resume());
    ASSERT_TRUE(backend.shutdown());
  }
  auto calls = checked_calls(record_path());
  std::vector<std::string> want = k_start_calls;
  want.insert(want.end(), {"PATCH /vm", "PATCH /vm", "PATCH /vm", "PUT /snapshot/create",
                           "PATCH /vm", "PUT /actions"});
  EXPECT_EQ(calls, want);
  EXPECT_TRUE(path_exists(mem) && path_exists(state));

  // A clone in its own directory, with its own disks and tap.
  TempDir clone_dir;
  write_text(clone_dir.file("root.raw"), std::string(1 << 16, '\0'));
  write_text(clone_dir.file("data.raw"), std::string(1 << 16, '\0'));
  set_env("FAKE_FC_RECORD", clone_dir.file("record.jsonl"));
  FirecrackerBackend clone{fake_options()};
  auto loaded = clone.snapshot_load(vm_spec(clone_dir.path(), "tap1"), mem, state, true);
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  EXPECT_EQ(checked_calls(clone_dir.file("record.jsonl")),
            (std::vector<std::string>{"PUT /logger", "PUT /metrics", "PUT /serial",
                                      "PUT /snapshot/load", "PATCH /drives/fcvm_root",
                                      "PATCH /drives/fcvm_data", "PUT /mmds", "PATCH /vm"}));
  for (const auto& line : read_json_lines(clone_dir.file("record.jsonl"))) {
    if (line["path"] != "/snapshot/load") continue;
    EXPECT_EQ(line["body"]["network_overrides"][0]["host_dev_name"], "tap1");
    // Relative to the clone's Firecracker's working directory, which is the clone's directory.
    EXPECT_EQ(line["body"]["vsock_override"]["uds_path"], "vsock.sock");
    EXPECT_EQ(clone.vsock_socket(), clone_dir.file("vsock.sock"));
    EXPECT_EQ(line["body"]["resume_vm"], false);
  }
  auto fd = clone.connect_agent(milliseconds(5000));
  ASSERT_TRUE(fd) << fd.error().to_string();
  auto c = converse(fd->get(), example_plan(), false);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->exit_code, 0);
  ASSERT_TRUE(clone.wait_exit(milliseconds(5000)));
}

// A snapshot whose disks are copies: the drives point at the copies while the snapshot is written
// (so its state file names them, not the source VM's files) and at the VM's own disks after.
TEST_F(FirecrackerBackendTest, SnapshotNamesTheDiskCopiesItWasGiven) {
  auto mem = m_dir.file("snap.mem");
  auto state = m_dir.file("snap.state");
  TempDir snap;
  auto spec = vm_spec(m_dir.path());
  std::vector<std::string> copies;
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    copies.push_back(snap.file("disk" + std::to_string(i)));
    write_text(copies.back(), std::string(1 << 16, '\0'));
  }
  FirecrackerBackend backend{fake_options()};
  ASSERT_TRUE(backend.start(spec));
  auto created = backend.snapshot_create(mem, state, copies);
  ASSERT_TRUE(created) << created.error().to_string();
  ASSERT_TRUE(backend.shutdown());
  auto calls = checked_calls(record_path());
  auto snapshot_at = std::find(calls.begin(), calls.end(), "PUT /snapshot/create") - calls.begin();
  ASSERT_LT(static_cast<size_t>(snapshot_at), calls.size());
  // Requests by position: every PATCH /drives before the snapshot names a copy, every one after
  // it the VM's own disk.
  std::vector<std::string> before, after;
  std::string root_copy;
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    if (spec.disks[i].root) root_copy = copies[i];
  }
  auto lines = read_json_lines(record_path());
  long request = 0;  // index among the non-GET requests, as in `calls`
  for (const auto& line : lines) {
    if (line["method"] == "GET") continue;
    auto path = line["path"].get<std::string>();
    if (line["method"] == "PATCH" && contains(path, "/drives/")) {
      auto on_host = line["body"]["path_on_host"].get<std::string>();
      bool is_before = request < snapshot_at;
      (is_before ? before : after).push_back(on_host);
      // Each drive gets its own disk's copy.
      if (is_before && path == "/drives/fcvm_root") {
        EXPECT_EQ(on_host, root_copy);
      }
    }
    ++request;
  }
  std::vector<std::string> own;
  for (const auto& d : spec.disks) own.push_back(d.path);
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  std::sort(copies.begin(), copies.end());
  std::sort(own.begin(), own.end());
  EXPECT_EQ(before, copies);
  EXPECT_EQ(after, own);
  // A wrong number of paths is refused before anything is sent.
  FirecrackerBackend second{fake_options()};
  ASSERT_TRUE(second.start(spec));
  auto bad = second.snapshot_create(mem + "2", state + "2", {copies[0], copies[0], copies[0]});
  EXPECT_FALSE(bad);
  ASSERT_TRUE(second.shutdown());
}

}  // namespace
}  // namespace fcvm::testing
