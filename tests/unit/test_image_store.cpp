// The host image store's pure parts: OCI configs and layouts, and its rows (names, ids, the
// foreign keys that keep an image in use from being removed).
#include <gtest/gtest.h>
#include <unistd.h>

#include "fcvm/image/oci.hpp"
#include "fcvm/image/store.hpp"
#include "fcvm/state/image_store.hpp"
#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/fs.hpp"
#include "scratch.hpp"

using namespace fcvm;

namespace {

std::string temp_path(const std::string& what) { return test::scratch_path("images-" + what); }

const std::string k_hex_a(64, 'a');
const std::string k_hex_b = std::string(63, 'a') + "b";
const std::string k_hex_c(64, 'c');

state::ImageRecord image_row(const std::string& hex) {
  state::ImageRecord r;
  r.id = "sha256:" + hex;
  r.disk = "/store/disks/" + hex + ".ext4";
  r.format = "ext4";
  r.size_bytes = 4096;
  r.content_bytes = 8192;
  r.layers = 2;
  r.manifest_digest = "sha256:" + std::string(64, 'f');
  r.config_json = R"({"config":{"Cmd":["sh"]}})";
  r.created_ms = 1;
  return r;
}

state::VmRecord vm_using(const std::string& id, const std::string& image_id) {
  state::VmRecord r;
  r.id = id;
  r.name = "vm-" + id;
  r.image = "busybox";
  r.options_json = "{}";
  r.dir = "/nonexistent";
  r.created_ms = state::now_ms();
  r.image_id = image_id;
  return r;
}

}  // namespace

TEST(ImageConfig, ParsesWhatAContainerTakes) {
  auto c = image::parse_image_config(R"({
    "architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
               "Env": ["PATH=/usr/bin"], "WorkingDir": "/srv", "User": "101",
               "StopSignal": "SIGQUIT", "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
               "Labels": {"a": "b"}},
    "rootfs": {"type": "layers", "diff_ids": []}})");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->entrypoint, std::vector<std::string>{"/docker-entrypoint.sh"});
  EXPECT_EQ(c->cmd, (std::vector<std::string>{"nginx", "-g", "daemon off;"}));
  EXPECT_EQ(c->env, std::vector<std::string>{"PATH=/usr/bin"});
  EXPECT_EQ(c->workdir, "/srv");
  EXPECT_EQ(c->user, "101");
  EXPECT_EQ(c->stop_signal, "SIGQUIT");
  EXPECT_EQ(c->exposed_ports, (std::vector<std::string>{"443/tcp", "80/tcp"}));
  EXPECT_EQ(c->labels.at("a"), "b");
  EXPECT_EQ(c->architecture, "amd64");
}

TEST(ImageConfig, NullsAndAbsentFieldsAreEmpty) {
  auto c = image::parse_image_config(R"({"config": {"Cmd": null, "Env": null}})");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->cmd.empty());
  auto bare = image::parse_image_config("{}");
  ASSERT_TRUE(bare);
  EXPECT_TRUE(bare->entrypoint.empty());
}

TEST(ImageConfig, MalformedIsAProtocolErrorNamingTheField) {
  for (const char* bad : {"[]", "not json", R"({"config": 3})", R"({"config": {"Cmd": "sh"}})",
                          R"({"config": {"Env": [1]}})", R"({"config": {"User": 0}})",
                          R"({"config": {"ExposedPorts": []}})"}) {
    auto c = image::parse_image_config(bad);
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.error().code(), ErrorCode::kProtocol) << bad;
  }
  auto c = image::parse_image_config(R"({"config": {"Cmd": "sh"}})");
  EXPECT_NE(c.error().message().find("Cmd"), std::string::npos);
}

TEST(OciLayout, ReadsTheOneManifest) {
  auto dir = temp_path("layout");
  ASSERT_TRUE(make_dirs(dir + "/blobs/sha256"));
  auto config = std::string(R"({"config":{"Cmd":["sh"]}})");
  ASSERT_TRUE(write_file_atomic(dir + "/blobs/sha256/" + k_hex_c, config));
  ASSERT_TRUE(write_file_atomic(dir + "/blobs/sha256/" + k_hex_b,
                                R"({"schemaVersion":2,"config":{"digest":"sha256:)" + k_hex_c +
                                    R"(","size":10},"layers":[{"digest":"sha256:)" + k_hex_a +
                                    R"(","size":100},{"digest":"sha256:)" + k_hex_a +
                                    R"(","size":23}]})"));
  ASSERT_TRUE(write_file_atomic(
      dir + "/index.json",
      R"({"schemaVersion":2,"manifests":[{"digest":"sha256:)" + k_hex_b + R"(","size":1}]})"));
  auto l = image::read_oci_layout(dir);
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->manifest_digest, "sha256:" + k_hex_b);
  EXPECT_EQ(l->config_digest, "sha256:" + k_hex_c);
  EXPECT_EQ(l->config_json, config);
  EXPECT_EQ(l->layers, 2);
  EXPECT_EQ(l->layer_bytes, 123);
  // Two manifests, or a digest that is not sha256:HEX64: refused.
  ASSERT_TRUE(write_file_atomic(dir + "/index.json", R"({"manifests":[{"digest":"sha256:)" +
                                                         k_hex_b + R"("},{"digest":"x"}]})"));
  EXPECT_FALSE(image::read_oci_layout(dir));
  ASSERT_TRUE(write_file_atomic(dir + "/index.json",
                                R"({"manifests":[{"digest":"sha256:../../etc/passwd"}]})"));
  auto traversal = image::read_oci_layout(dir);
  ASSERT_FALSE(traversal);
  EXPECT_NE(traversal.error().message().find("malformed digest"), std::string::npos);
  (void)remove_all(dir);
}

TEST(ImageStoreName, RegistryAndArchives) {
  auto name = [](const char* ref) {
    auto r = storage::parse_image_ref(ref);
    EXPECT_TRUE(r) << ref;
    return r ? image::store_name(*r) : std::string();
  };
  EXPECT_EQ(name("busybox"), "busybox:latest");
  EXPECT_EQ(name("localhost:5000/app:v1"), "localhost:5000/app:v1");
  auto pinned = "quay.io/a/b@sha256:" + std::string(64, '0');
  EXPECT_EQ(name(pinned.c_str()).find(":latest"), std::string::npos);
  auto archive = temp_path("x.tar");
  ASSERT_TRUE(write_file_atomic(archive, "x"));
  EXPECT_EQ(name(("oci-archive:" + archive).c_str()), "oci-archive:" + archive);
  (void)remove_all(archive);
}

TEST(ImageRows, NamesIdsAndPrefixes) {
  auto vms = state::VmStore::open(temp_path("db"));
  ASSERT_TRUE(vms);
  state::ImageStore rows(vms->db());
  ASSERT_TRUE(rows.add(image_row(k_hex_a), "app:v1", ""));
  ASSERT_TRUE(rows.add(image_row(k_hex_a), "app:latest", ""));  // same image: a second name
  ASSERT_TRUE(rows.add(image_row(k_hex_b), "other:v1", "stamp"));
  auto list = rows.list();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  auto a = rows.find("app:v1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, "sha256:" + k_hex_a);
  EXPECT_EQ(a->names.size(), 2u);
  EXPECT_TRUE(rows.find("sha256:" + k_hex_b));
  EXPECT_TRUE(rows.find(k_hex_b.substr(0, 64)));
  auto ambiguous = rows.find("aaaa");  // both ids start so
  ASSERT_FALSE(ambiguous);
  EXPECT_EQ(ambiguous.error().code(), ErrorCode::kInvalidInput);
  auto missing = rows.find("nope:v1");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  auto stamped = rows.by_name("other:v1");
  ASSERT_TRUE(stamped && *stamped);
  EXPECT_EQ((*stamped)->second, "stamp");
  // A name moves to the image it is given to.
  ASSERT_TRUE(rows.add(image_row(k_hex_b), "app:latest", ""));
  EXPECT_EQ(rows.find("app:latest")->id, "sha256:" + k_hex_b);
  auto last = rows.remove_name("app:v1");
  ASSERT_TRUE(last);
  EXPECT_TRUE(*last);  // image a has no name left
}

TEST(ImageRows, AnImageInUseCannotBeRemoved) {
  auto vms = state::VmStore::open(temp_path("db"));
  ASSERT_TRUE(vms);
  state::ImageStore rows(vms->db());
  ASSERT_TRUE(rows.add(image_row(k_hex_a), "app:v1", ""));
  ASSERT_TRUE(vms->insert(vm_using("v1", "sha256:" + k_hex_a)));
  state::SnapshotRecord snap;
  snap.id = "s1";
  snap.name = "snap";
  snap.image_id = "sha256:" + k_hex_a;
  ASSERT_TRUE(state::SnapshotStore(vms->db()).insert(snap));
  auto users = rows.users("sha256:" + k_hex_a);
  ASSERT_TRUE(users);
  EXPECT_EQ(users->vms.size(), 1u);
  EXPECT_EQ(users->snapshots.size(), 1u);
  auto refused = rows.remove("sha256:" + k_hex_a);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(vms->remove("v1"));
  EXPECT_FALSE(rows.remove("sha256:" + k_hex_a));  // the snapshot still holds it
  ASSERT_TRUE(state::SnapshotStore(vms->db()).remove("s1"));
  ASSERT_TRUE(rows.remove("sha256:" + k_hex_a));
  EXPECT_FALSE(rows.find("app:v1"));  // its names went with it
  // A VM cannot be created on an image that is gone (a run racing an rmi).
  auto late = vms->insert(vm_using("v2", "sha256:" + k_hex_a));
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), ErrorCode::kConflict);
  EXPECT_NE(late.error().message().find("removed"), std::string::npos);
  // A VM without a stored image references nothing.
  EXPECT_TRUE(vms->insert(vm_using("v3", "")));
}
