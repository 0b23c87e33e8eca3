#include <gtest/gtest.h>

#include <cerrno>

#include "fcvm/vm/control_proto.hpp"

using namespace fcvm;
using namespace fcvm::vm;

namespace {
template <class T>
T round_trip_request(const control::Request& r) {
  auto decoded = control::decode_request(control::encode(r));
  EXPECT_TRUE(decoded) << (decoded ? "" : decoded.error().message());
  EXPECT_TRUE(std::holds_alternative<T>(*decoded)) << control::encode(r);
  return std::get<T>(*decoded);
}
template <class T>
T round_trip_message(const control::Message& m) {
  auto decoded = control::decode_message(control::encode(m));
  EXPECT_TRUE(decoded) << (decoded ? "" : decoded.error().message());
  EXPECT_TRUE(std::holds_alternative<T>(*decoded)) << control::encode(m);
  return std::get<T>(*decoded);
}
}  // namespace

TEST(ControlProto, RequestsRoundTrip) {
  round_trip_request<control::Attach>(control::Attach{});
  round_trip_request<control::Kill>(control::Kill{});
  round_trip_request<control::VolumeSync>(control::VolumeSync{});
  round_trip_request<control::Subscribe>(control::Subscribe{});
  EXPECT_FALSE(round_trip_request<control::Stop>(control::Stop{}).timeout_s);
  EXPECT_EQ(round_trip_request<control::Stop>(control::Stop{7}).timeout_s, 7);
  auto snap = round_trip_request<control::Snapshot>(control::Snapshot{"warm", true});
  EXPECT_EQ(snap.name, "warm");
  EXPECT_TRUE(snap.then_stop);
  control::Exec exec;
  exec.argv = {"sh", "-c", "echo hi"};
  exec.env = {"A=1"};
  exec.workdir = "/w";
  exec.user = "1000:1000";
  exec.tty = true;
  exec.in_vm = true;
  exec.stdin_open = true;
  exec.rows = 40;
  exec.cols = 120;
  auto e = round_trip_request<control::Exec>(exec);
  EXPECT_EQ(e.argv, exec.argv);
  EXPECT_EQ(e.env, exec.env);
  EXPECT_EQ(e.workdir, "/w");
  EXPECT_EQ(e.user, "1000:1000");
  EXPECT_TRUE(e.tty && e.in_vm && e.stdin_open);
  EXPECT_EQ(e.rows, 40);
  EXPECT_EQ(e.cols, 120);
  auto rs = round_trip_request<control::Resize>(control::Resize{24, 80});
  EXPECT_EQ(rs.rows, 24);
  EXPECT_EQ(rs.cols, 80);
  EXPECT_EQ(round_trip_request<control::Signal>(control::Signal{"TERM"}).signal, "TERM");
  EXPECT_EQ(round_trip_request<control::ContainerSignal>(control::ContainerSignal{"HUP"}).signal,
            "HUP");
  EXPECT_EQ(round_trip_request<control::Rename>(control::Rename{"web2"}).name, "web2");
  round_trip_request<control::Pause>(control::Pause{});
  round_trip_request<control::Unpause>(control::Unpause{});
  EXPECT_EQ(round_trip_request<control::SetExpiry>(control::SetExpiry{1796417294992}).expires_ms,
            1796417294992);
  EXPECT_EQ(round_trip_request<control::SetExpiry>(control::SetExpiry{0}).expires_ms, 0);
  EXPECT_EQ(control::encode(control::ContainerSignal{"HUP"}),
            R"({"signal":"HUP","type":"container_signal"})");
}

TEST(ControlProto, AFailureKeepsItsCodeAndErrno) {
  auto f = round_trip_message<control::Failure>(
      control::Failure{Error(ErrorCode::kSystem, "copy to /s/disk.ext4: copy_file_range", ENOSPC)});
  EXPECT_EQ(f.error.code(), ErrorCode::kSystem);
  EXPECT_EQ(f.error.sys_errno(), ENOSPC);
  EXPECT_EQ(f.error.to_string(), "copy to /s/disk.ext4: copy_file_range: No space left on device");
  for (auto code : {ErrorCode::kInternal, ErrorCode::kInvalidInput, ErrorCode::kNotFound,
                    ErrorCode::kAlreadyExists, ErrorCode::kUnavailable, ErrorCode::kTimeout,
                    ErrorCode::kSystem, ErrorCode::kProtocol, ErrorCode::kCancelled}) {
    auto g = round_trip_message<control::Failure>(control::Failure{Error(code, "x")});
    EXPECT_EQ(g.error.code(), code) << control::error_code_name(code);
  }
}

TEST(ControlProto, MessagesRoundTrip) {
  auto ok = round_trip_message<control::Ok>(control::Ok{"abc", "warm", 3});
  EXPECT_EQ(ok.id, "abc");
  EXPECT_EQ(ok.name, "warm");
  EXPECT_EQ(ok.count, 3);
  EXPECT_EQ(round_trip_message<control::Exited>(control::Exited{137}).code, 137);
  auto ev =
      round_trip_message<Event>(Event{1234567890123, EventType::kExited, "id1", "web", 3, "boom"});
  EXPECT_EQ(ev.time_ns, 1234567890123);
  EXPECT_EQ(ev.type, EventType::kExited);
  EXPECT_EQ(ev.vm_id, "id1");
  EXPECT_EQ(ev.vm_name, "web");
  EXPECT_EQ(ev.exit_code, 3);
  EXPECT_EQ(ev.detail, "boom");
}

TEST(ControlProto, MalformedInputIsAProtocolErrorNeverACrash) {
  for (const char* bad : {"",
                          "null",
                          "[]",
                          "{}",
                          "{\"type\":1}",
                          "{\"type\":\"launch\"}",
                          "{\"type\":\"stop\",\"timeout_s\":\"soon\"}",
                          "{\"type\":\"stop\",\"timeout_s\":-1}",
                          "{\"type\":\"exec\"}",
                          "{\"type\":\"exec\",\"argv\":[1]}",
                          "{\"type\":\"exec\",\"argv\":[\"a\"],\"tty\":\"yes\"}",
                          "{\"type\":\"exec\",\"argv\":[\"a\"],\"rows\":70000}",
                          "{\"type\":\"resize\",\"rows\":0,\"cols\":80}",
                          "{\"type\":\"signal\",\"signal\":\"\"}",
                          "{\"type\":\"container_signal\"}",
                          "{\"type\":\"rename\",\"name\":\"\"}",
                          "{\"type\":\"rename\",\"name\":7}",
                          "{\"type\":\"snapshot\",\"name\":[]}",
                          "{\"type\":\"set_expiry\"}",
                          "{\"type\":\"set_expiry\",\"expires_ms\":-5}",
                          "{\"type\":\"set_expiry\",\"expires_ms\":\"later\"}",
                          "{\"type\":\"attach\""}) {
    auto r = control::decode_request(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kProtocol) << bad;
  }
  for (const char* bad : {"{\"type\":\"exit\"}", "{\"type\":\"exit\",\"code\":\"0\"}",
                          "{\"type\":\"ok\",\"count\":-1}", "{\"type\":\"event\"}",
                          "{\"type\":\"event\",\"event\":{\"event\":\"exploded\"}}",
                          "{\"type\":\"error\",\"errno\":\"ENOSPC\"}", "{\"type\":\"hello\"}"}) {
    auto m = control::decode_message(bad);
    ASSERT_FALSE(m) << bad;
    EXPECT_EQ(m.error().code(), ErrorCode::kProtocol) << bad;
  }
}
