// The containerd messages of proto/containerd against bytes encoded by hand from the protobuf
// wire format with containerd 1.6's field numbers: what containerd sends decodes, what a shim
// answers encodes as containerd reads it.
#include <gtest/gtest.h>

#include <string>

#include "containerd/events.pb.h"
#include "containerd/shim.pb.h"

namespace fcvm {
namespace {

// A length-delimited field (wire type 2).
std::string field(int number, const std::string& bytes) {
  return std::string(1, static_cast<char>(number << 3 | 2)) +
         std::string(1, static_cast<char>(bytes.size())) + bytes;
}
// A varint field (wire type 0) for small values.
std::string varint(int number, int value) {
  return std::string(1, static_cast<char>(number << 3)) + std::string(1, static_cast<char>(value));
}

TEST(ContainerdProto, CreateTaskRequestAsContainerdSendsIt) {
  auto mount = field(1, "overlay") + field(2, "overlay") + field(4, "index=off") +
               field(4, "lowerdir=/s/1/fs");
  auto wire = field(1, "t3") + field(2, "/run/ctrd/bundle/t3") + field(3, mount) + varint(4, 1) +
              field(5, "/fifo/t3-stdin") + field(6, "/fifo/t3-stdout");
  containerd::task::v2::CreateTaskRequest r;
  ASSERT_TRUE(r.ParseFromString(wire));
  EXPECT_EQ(r.id(), "t3");
  EXPECT_EQ(r.bundle(), "/run/ctrd/bundle/t3");
  ASSERT_EQ(r.rootfs_size(), 1);
  EXPECT_EQ(r.rootfs(0).type(), "overlay");
  ASSERT_EQ(r.rootfs(0).options_size(), 2);
  EXPECT_EQ(r.rootfs(0).options(1), "lowerdir=/s/1/fs");
  EXPECT_TRUE(r.terminal());
  EXPECT_EQ(r.stdin(), "/fifo/t3-stdin");
  EXPECT_EQ(r.stdout(), "/fifo/t3-stdout");
  EXPECT_EQ(r.stderr(), "");
}

TEST(ContainerdProto, AnswersEncodeAsContainerdReadsThem) {
  containerd::task::v2::DeleteResponse d;
  d.set_pid(42);
  d.set_exit_status(3);
  d.mutable_exited_at()->set_seconds(5);
  EXPECT_EQ(d.SerializeAsString(), varint(1, 42) + varint(2, 3) + field(3, varint(1, 5)));
  containerd::task::v2::StateResponse s;
  s.set_id("t3");
  s.set_status(containerd::v1::types::STOPPED);
  s.set_exit_status(3);
  EXPECT_EQ(s.SerializeAsString(), field(1, "t3") + varint(4, 3) + varint(9, 3));
  containerd::task::v2::WaitResponse w;
  w.set_exit_status(137);
  EXPECT_EQ(w.SerializeAsString(), std::string("\x08\x89\x01", 3));  // 137 as a varint
  containerd::task::v2::ConnectResponse c;
  c.set_shim_pid(7);
  c.set_task_pid(8);
  EXPECT_EQ(c.SerializeAsString(), varint(1, 7) + varint(2, 8));
}

TEST(ContainerdProto, ATaskExitEventInItsEnvelope) {
  containerd::events::TaskExit e;
  e.set_container_id("t3");
  e.set_id("t3");
  e.set_pid(42);
  e.set_exit_status(3);
  EXPECT_EQ(e.SerializeAsString(), field(1, "t3") + field(2, "t3") + varint(3, 42) + varint(4, 3));
  containerd::events::ForwardRequest f;
  auto* env = f.mutable_envelope();
  env->set_namespace_("default");
  env->set_topic("/tasks/exit");
  env->mutable_event()->set_type_url("containerd.events.TaskExit");
  env->mutable_event()->set_value(e.SerializeAsString());
  auto any = field(1, "containerd.events.TaskExit") + field(2, e.SerializeAsString());
  EXPECT_EQ(f.SerializeAsString(),
            field(1, field(2, "default") + field(3, "/tasks/exit") + field(4, any)));
}

}  // namespace
}  // namespace fcvm
