#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "fcvm/storage/image_ref.hpp"

using namespace fcvm;
using storage::parse_image_ref;

TEST(ImageRef, ShortNameGetsLatest) {
  auto r = parse_image_ref("nginx");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->domain, "");
  EXPECT_EQ(r->path, "nginx");
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->guest_ref(), "nginx:latest");
  EXPECT_FALSE(r->registry_on_loopback());
}

TEST(ImageRef, DomainPortTagDigest) {
  auto r = parse_image_ref("127.0.0.1:5055/library/nginx:1.22");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->domain, "127.0.0.1:5055");
  EXPECT_EQ(r->path, "library/nginx");
  EXPECT_EQ(r->tag, "1.22");
  EXPECT_TRUE(r->registry_on_loopback());
  EXPECT_EQ(r->registry_port(), "5055");
  auto d = parse_image_ref("quay.io/a/b@sha256:" + std::string(64, 'a'));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->tag, "");
  EXPECT_EQ(d->domain, "quay.io");
  EXPECT_TRUE(parse_image_ref("localhost/x")->registry_on_loopback());
}

TEST(ImageRef, RejectsBadReferences) {
  for (const char* bad :
       {"", "Nginx", "nginx:", "nginx:-x", "a//b", "nginx@sha256:zz", "-a", "bad host:1/x", "x/"}) {
    auto r = parse_image_ref(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
    }
  }
}

TEST(ImageRef, Archives) {
  auto missing = parse_image_ref("oci-archive:/nonexistent/x.tar");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("/nonexistent/x.tar"), std::string::npos);
  EXPECT_FALSE(parse_image_ref("oci-archive:"));
  EXPECT_FALSE(parse_image_ref("docker-archive:/"));  // a directory
  char path[] = "/tmp/fcvm-image-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  auto r = parse_image_ref(std::string("docker-archive:") + path);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->source, storage::ImageSource::kDockerArchive);
  EXPECT_EQ(r->archive_path, path);
  unlink(path);
  close(fd);
}
