#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/sys/process_identity.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/vm/snapshot.hpp"
#include "scratch.hpp"

using namespace fcvm;

namespace {
std::string temp_dir() {
  auto path = test::scratch_path("snapstore");
  EXPECT_TRUE(make_dirs(path));
  return path;
}
state::SnapshotRecord snapshot(const std::string& id, const std::string& name,
                               const std::string& dir) {
  state::SnapshotRecord s;
  s.id = id;
  s.name = name;
  s.source_id = "vm0";
  s.source_name = "src";
  s.image = "nginx:latest";
  s.backend = "qemu";
  s.vcpus = 2;
  s.mem_mib = 512;
  s.kernel = "/k";
  s.base_disk = "/b";
  s.options_json = "{}";
  s.plan_json = "{}";
  s.dir = dir;
  s.creator = sys::ProcessIdentity::of(::getpid());
  s.created_ms = state::now_ms();
  return s;
}
// The identity of a process that has exited.
sys::ProcessIdentity dead_process() {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::pause();
    ::_exit(0);
  }
  auto id = sys::ProcessIdentity::of(pid);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return id;
}
}  // namespace

TEST(SnapshotStore, OnlyCompleteSnapshotsAreFound) {
  auto dir = temp_dir();
  auto store = state::VmStore::open(dir + "/state.db");
  ASSERT_TRUE(store) << store.error().message();
  state::SnapshotStore snaps(store->db());
  ASSERT_TRUE(snaps.insert(snapshot("aaaa1111", "warm", dir + "/s1")));
  // Being written: neither found nor listed as complete.
  auto missing = snaps.find("warm");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(snaps.complete("aaaa1111", 4096));
  auto found = snaps.find("warm");
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(found->status, state::SnapshotStatus::kComplete);
  EXPECT_EQ(found->size_bytes, 4096);
  EXPECT_TRUE(found->creator.empty());
  ASSERT_TRUE(found->completed_ms);
  EXPECT_TRUE(snaps.find("aaaa").has_value());  // unique id prefix
  // Complete is a one-way change.
  EXPECT_FALSE(snaps.complete("aaaa1111", 1));
  // A name is taken while a snapshot of that name exists in any state.
  auto dup = snaps.insert(snapshot("bbbb2222", "warm", dir + "/s2"));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(dup.error().message().find("warm"), std::string::npos);
  ASSERT_TRUE(snaps.remove("aaaa1111"));
  EXPECT_FALSE(snaps.find("warm"));
}

TEST(SnapshotStore, ClonesAreTheVmsThatNameIt) {
  auto dir = temp_dir();
  auto store = state::VmStore::open(dir + "/state.db");
  ASSERT_TRUE(store);
  state::SnapshotStore snaps(store->db());
  ASSERT_TRUE(snaps.insert(snapshot("cccc3333", "warm", dir + "/s")));
  for (const auto& [id, name, snap] :
       {std::tuple{"v1", "c1", "cccc3333"}, std::tuple{"v2", "other", ""},
        std::tuple{"v3", "c2", "cccc3333"}}) {
    state::VmRecord r;
    r.id = id;
    r.name = name;
    r.image = "nginx";
    r.options_json = "{}";
    r.dir = dir + "/" + id;
    r.created_ms = state::now_ms();
    r.snapshot = snap;
    ASSERT_TRUE(store->insert(r));
  }
  auto clones = snaps.clones_of("cccc3333");
  ASSERT_TRUE(clones);
  ASSERT_EQ(clones->size(), 2u);
  EXPECT_EQ((*clones)[0].second, "c1");
  EXPECT_EQ((*clones)[1].second, "c2");
  // The column survives a round trip through the VM store.
  auto v1 = store->get("v1");
  ASSERT_TRUE(v1 && *v1);
  EXPECT_EQ((**v1).snapshot, "cccc3333");
  // And removal is refused while they exist.
  auto snap = snaps.get("cccc3333");
  ASSERT_TRUE(snap && *snap);
  auto refused = vm::remove_snapshot(*store, **snap, /*force=*/false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(refused.error().message().find("c1, c2"), std::string::npos)
      << refused.error().message();
  EXPECT_TRUE(snaps.get("cccc3333").value().has_value());
}

TEST(SnapshotStore, ReconcileRemovesSnapshotsWhoseWriterDied) {
  auto dir = temp_dir();
  auto store = state::VmStore::open(dir + "/state.db");
  ASSERT_TRUE(store);
  state::SnapshotStore snaps(store->db());
  // A writer that died mid-way: row `creating`, a read-only partial directory.
  auto torn = snapshot("dddd4444", "torn", dir + "/torn");
  torn.creator = dead_process();
  ASSERT_TRUE(snaps.insert(torn));
  ASSERT_TRUE(make_dirs(torn.dir));
  ASSERT_TRUE(write_file_atomic(torn.dir + "/memory.ram", "partial"));
  ::chmod(torn.dir.c_str(), 0500);
  // A writer that is alive (this process): left alone.
  auto live = snapshot("eeee5555", "live", dir + "/live");
  ASSERT_TRUE(snaps.insert(live));
  ASSERT_TRUE(make_dirs(live.dir));

  ASSERT_TRUE(vm::reconcile_snapshots(*store));
  EXPECT_FALSE(snaps.get("dddd4444").value().has_value());
  EXPECT_FALSE(path_exists(torn.dir));
  EXPECT_TRUE(snaps.get("eeee5555").value().has_value());
  EXPECT_TRUE(path_exists(live.dir));
  // Neither is listed: one is gone, the other incomplete.
  auto listed = vm::list_snapshots(*store);
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
}

TEST(SnapshotNames, FollowTheVmNameRules) {
  EXPECT_TRUE(vm::validate_snapshot_name("warm-nginx.v2_1"));
  for (const char* bad : {"", "-x", "a/b", "a b", ".hidden"}) {
    auto r = vm::validate_snapshot_name(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message().find(std::string("\"") + bad + "\""), std::string::npos);
  }
}
