#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/sys/process_identity.hpp"
#include "fcvm/vm/container_log.hpp"
#include "scratch.hpp"

using namespace fcvm;

namespace {
std::string temp_db() { return test::scratch_path("store") + ".db"; }
state::VmRecord record(const std::string& id, const std::string& name) {
  state::VmRecord r;
  r.id = id;
  r.name = name;
  r.image = "busybox";
  r.vcpus = 1;
  r.mem_mib = 256;
  r.options_json = "{}";
  r.dir = "/nonexistent/" + id;
  r.created_ms = state::now_ms();
  return r;
}
}  // namespace

TEST(VmStore, InsertFindUpdateRemove) {
  auto store = state::VmStore::open(temp_db());
  ASSERT_TRUE(store) << store.error().message();
  auto r = record("abcdef0123", "web");
  r.ports = "127.0.0.1:8080:80/tcp";
  r.exit_code = 3;
  r.monitor = sys::ProcessIdentity::of(::getpid());
  ASSERT_TRUE(store->insert(r));
  auto by_name = store->find("web");
  ASSERT_TRUE(by_name);
  EXPECT_EQ(by_name->id, "abcdef0123");
  EXPECT_EQ(by_name->ports, r.ports);
  EXPECT_EQ(by_name->exit_code, 3);
  EXPECT_EQ(by_name->monitor.pid, ::getpid());
  EXPECT_TRUE(by_name->monitor.alive());
  EXPECT_TRUE(store->find("abcdef0123"));
  EXPECT_TRUE(store->find("abc"));  // a unique prefix
  auto too_short = store->find("ab");
  ASSERT_FALSE(too_short);
  EXPECT_EQ(too_short.error().code(), ErrorCode::kNotFound);
  by_name->status = state::VmStatus::kRestarting;
  by_name->restart_count = 2;
  by_name->expires_ms = 1796417294992;
  ASSERT_TRUE(store->update(*by_name));
  auto restarting = store->get("abcdef0123");
  ASSERT_TRUE(restarting && *restarting);
  EXPECT_EQ((*restarting)->status, state::VmStatus::kRestarting);
  EXPECT_EQ((*restarting)->restart_count, 2);
  EXPECT_EQ((*restarting)->expires_ms, 1796417294992);
  by_name->status = state::VmStatus::kRunning;
  by_name->exit_code.reset();
  ASSERT_TRUE(store->update(*by_name));
  auto again = store->get("abcdef0123");
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->status, state::VmStatus::kRunning);
  EXPECT_FALSE((*again)->exit_code);
  ASSERT_TRUE(store->remove("abcdef0123"));
  EXPECT_EQ(store->find("web").error().code(), ErrorCode::kNotFound);
}

TEST(VmStore, NamesAreUniqueAndPrefixesMustBeUnambiguous) {
  auto store = state::VmStore::open(temp_db());
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert(record("aaa111", "one")));
  auto dup = store->insert(record("bbb222", "one"));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(dup.error().message().find("\"one\""), std::string::npos);
  ASSERT_TRUE(store->insert(record("aaa222", "two")));
  auto ambiguous = store->find("aaa");
  ASSERT_FALSE(ambiguous);
  EXPECT_EQ(ambiguous.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(store->find("aaa2")->name, "two");
  // A VM named like another's id prefix: the name wins.
  ASSERT_TRUE(store->insert(record("ccc333", "aaa")));
  EXPECT_EQ(store->find("aaa")->id, "ccc333");
  EXPECT_EQ(store->list()->size(), 3u);
}

TEST(VmStore, ReopenKeepsDataAndSchemaVersion) {
  auto path = temp_db();
  {
    auto store = state::VmStore::open(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->insert(record("dd44", "kept")));
  }
  auto store = state::VmStore::open(path);
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->find("kept"));
  auto v = store->db().prepare("PRAGMA user_version");
  ASSERT_TRUE(v && *v->step());
  EXPECT_EQ(v->column_int(0), 6);
  ASSERT_TRUE(store->db().exec("PRAGMA user_version = 99"));
  auto newer = state::VmStore::open(path);
  ASSERT_FALSE(newer);
  EXPECT_NE(newer.error().message().find("newer"), std::string::npos);
}

// A database written by the first schema (no snapshots) migrates in place and keeps its VMs.
TEST(VmStore, MigratesAVersionOneDatabase) {
  auto path = temp_db();
  {
    auto store = state::VmStore::open(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->insert(record("v1old", "old")));
    // Back to version 1: what migrations 2 and 3 added goes (a column with a foreign key cannot
    // be dropped: the table is copied without it).
    ASSERT_TRUE(store->db().exec(
        "PRAGMA foreign_keys=OFF; DROP TABLE snapshots; DROP TABLE image_names; "
        "CREATE TABLE v1 AS SELECT id, name, image, backend, status, vcpus, mem_mib, ports, "
        "options_json, dir, auto_remove, monitor_pid, monitor_start, monitor_boot, vmm_pid, "
        "vmm_start, vmm_boot, helper_pid, helper_start, helper_boot, network_json, created_ms, "
        "started_ms, finished_ms, exit_code, error FROM vms; DROP TABLE vms; DROP TABLE images; "
        "ALTER TABLE v1 RENAME TO vms; CREATE INDEX vms_created ON vms(created_ms); "
        "PRAGMA user_version = 1"));
  }
  auto store = state::VmStore::open(path);
  ASSERT_TRUE(store) << store.error().message();
  auto old = store->find("old");
  ASSERT_TRUE(old) << old.error().message();
  EXPECT_EQ(old->id, "v1old");
  EXPECT_EQ(old->snapshot, "");
  EXPECT_EQ(old->image_id, "");
  EXPECT_EQ(old->vmm_version, "");
  EXPECT_EQ(old->restart_count, 0);
  EXPECT_FALSE(old->expires_ms);
  auto v = store->db().prepare("PRAGMA user_version");
  ASSERT_TRUE(v && v->step());
  EXPECT_EQ(v->column_int(0), 6);
}

TEST(VmStore, ConcurrentWritersLoseNothing) {
  auto path = temp_db();
  ASSERT_TRUE(state::VmStore::open(path));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, taken{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto store = state::VmStore::open(path);  // a connection each, like separate processes
      ASSERT_TRUE(store);
      for (int i = 0; i < 25; ++i) {
        auto r = store->insert(record("id-" + std::to_string(t) + "-" + std::to_string(i),
                                      "vm-" + std::to_string(t) + "-" + std::to_string(i)));
        if (r) ++ok;
        // Every thread also races for one shared name.
        if (store->insert(
                record("shared-" + std::to_string(t) + "-" + std::to_string(i), "shared"))) {
          ++taken;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(taken.load(), 1);
  auto store = state::VmStore::open(path);
  EXPECT_EQ(store->list()->size(), 201u);
}

TEST(ProcessIdentity, DetectsDeadAndRecycledProcesses) {
  auto self = sys::ProcessIdentity::of(::getpid());
  EXPECT_TRUE(self.alive());
  auto other = self;
  other.start_time += 1;  // same pid, different process
  EXPECT_FALSE(other.alive());
  EXPECT_FALSE(other.kill_if_alive());
  auto reboot = self;
  reboot.boot_id = "00000000-0000-0000-0000-000000000000";
  EXPECT_FALSE(reboot.alive());
  EXPECT_FALSE(sys::ProcessIdentity{}.alive());
}

TEST(ContainerLog, WritesCriRecordsAndParsesThemBack) {
  auto path = test::scratch_path("log");
  FILE* f = std::fopen(path.c_str(), "w+");
  ASSERT_NE(f, nullptr);
  {
    vm::ContainerLogWriter w(fileno(f));
    w.write(vm::LogStream::kStdout, "one\ntw");
    w.write(vm::LogStream::kStderr, "err\n");
    w.write(vm::LogStream::kStdout, "o\nthree");
    w.flush();
  }
  std::fflush(f);
  std::rewind(f);
  char line[512];
  std::vector<vm::LogRecord> recs;
  while (std::fgets(line, sizeof line, f)) {
    std::string l(line);
    l.pop_back();
    auto r = vm::parse_log_line(l);
    ASSERT_TRUE(r) << l;
    recs.push_back(*r);
  }
  std::fclose(f);
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[0].text, "one");
  EXPECT_EQ(recs[1].stream, vm::LogStream::kStderr);
  EXPECT_EQ(recs[2].text, "two");
  EXPECT_FALSE(recs[2].partial);
  EXPECT_EQ(recs[3].text, "three");
  EXPECT_TRUE(recs[3].partial);
  EXPECT_EQ(recs[0].time.size(), 30u);  // 2026-11-27T16:56:50.123456789Z
  EXPECT_FALSE(vm::parse_log_line("garbage"));
  EXPECT_FALSE(vm::parse_log_line("t stdin F x"));
}

TEST(ContainerLog, TimeFormat) {
  EXPECT_EQ(vm::format_time_rfc3339nano(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(vm::format_time_rfc3339nano(1700000000123456789), "2023-11-14T22:13:20.123456789Z");
}

// Commands started together on a fresh data directory all open the store: none may fail with
// "database is locked" while another switches the new file to WAL.
TEST(VmStore, ConcurrentFirstOpensAllSucceed) {
  for (int round = 0; round < 5; ++round) {
    auto path = temp_db();
    std::vector<pid_t> children;
    for (int i = 0; i < 8; ++i) {
      pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        auto store = state::VmStore::open(path);
        ::_exit(store ? 0 : 1);
      }
      children.push_back(pid);
    }
    int failed = 0;
    for (auto pid : children) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    EXPECT_EQ(failed, 0) << "round " << round;
  }
}
