/*
 * test_config.c -- the configuration's address ranges and URL prefixes
 * (src/base/config.c): trusted_proxies entries as addresses and CIDR
 * ranges, matched bit by bit (prefixes that do not end on a byte,
 * IPv4-mapped IPv6 peers), and the checks on base_path and
 * X-Forwarded-Prefix.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "aced/config.h"
#include "aced/limits.h"
#include "tap.h"

/* Is the address text `addr` trusted by `list`? */
static int trusted(const char *list, const char *addr)
{
  unsigned char a[16];
  if (inet_pton(AF_INET, addr, a) == 1)
    return config_proxy_trusted(list, AF_INET, a);
  if (inet_pton(AF_INET6, addr, a) == 1)
    return config_proxy_trusted(list, AF_INET6, a);
  return -1;
}

static int valid_proxies(const char *list)
{
  struct aced_config c;
  char err[512];
  config_defaults(&c);
  snprintf(c.trusted_proxies, sizeof c.trusted_proxies, "%s", list);
  return config_validate(&c, err, sizeof err) == 0;
}

int main(void)
{
  static const struct {
    const char *list, *addr;
    int want;
  } cases[] = {
      {"", "127.0.0.1", 0},
      {"127.0.0.1", "127.0.0.1", 1},
      {"127.0.0.1", "127.0.0.2", 0},
      {"127.0.0.0/8", "127.255.1.2", 1},
      {"127.0.0.0/8", "128.0.0.1", 0},
      {"10.0.0.0/8, 127.0.0.1", "127.0.0.1", 1},
      {"192.168.4.0/22", "192.168.7.255", 1}, /* prefix not on a byte */
      {"192.168.4.0/22", "192.168.8.0", 0},
      {"192.168.4.0/22", "192.168.3.255", 0},
      {"10.1.2.3/32", "10.1.2.3", 1},
      {"10.1.2.3/32", "10.1.2.4", 0},
      {"0.0.0.0/0", "203.0.113.9", 1},
      {"0.0.0.0/0", "::1", 0},               /* families do not mix... */
      {"::1/128", "::1", 1},
      {"::1/128", "::2", 0},
      {"::1", "127.0.0.1", 0},
      {"fd00::/8", "fd12:3456::1", 1},
      {"fd00::/8", "fe80::1", 0},
      {"2001:db8::/33", "2001:db8:7fff::1", 1},
      {"2001:db8::/33", "2001:db8:8000::1", 0},
      {"::/0", "2001:db8::1", 1},
      {"127.0.0.0/8", "::ffff:127.0.0.1", 1}, /* ...but a mapped IPv4 peer is IPv4 */
      {"10.0.0.0/8", "::ffff:127.0.0.1", 0},
      {"::ffff:0:0/96", "::ffff:127.0.0.1", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    tap_ok(trusted(cases[i].list, cases[i].addr) == cases[i].want, "trusted_proxies '%s' %s %s",
           cases[i].list, cases[i].want ? "trusts" : "does not trust", cases[i].addr);

  static const char *const good[] = {"127.0.0.0/8", "::1/128", "10.0.0.0/8, ::1/128, 192.168.1.7",
                                     "0.0.0.0/0", "::/0", "1.2.3.4/32"};
  static const char *const bad[] = {"10.0.0.0/33", "::1/129", "1.2.3.4/", "/8", "x/8",
                                    "10.0.0.0/8x", "10.0.0.0/-1", "10.0.0/8", "1.2.3.4/0008",
                                    "localhost"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    tap_ok(valid_proxies(good[i]), "trusted_proxies '%s' is valid", good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    tap_ok(!valid_proxies(bad[i]), "trusted_proxies '%s' is refused", bad[i]);

  static const char *const prefixes_ok[] = {"", "/aced", "/ml/aced", "/a-b_c.d~e", "/%7Euser", "/a:b@c",
                                            "/.well", "/..x"};
  static const char *const prefixes_bad[] = {"aced", "/", "/aced/", "//evil", "/a//b", "/a/./b",
                                             "/a/..", "/a b", "/a\"b", "/a?b", "/a#b", "/a%zz",
                                             "/a%2", "/a\\b", "/\xc3\xa9"};
  char why[128];
  for (size_t i = 0; i < sizeof prefixes_ok / sizeof prefixes_ok[0]; i++)
    tap_ok(config_base_path_check(prefixes_ok[i], why, sizeof why) == 0, "prefix '%s' is valid",
           prefixes_ok[i]);
  for (size_t i = 0; i < sizeof prefixes_bad / sizeof prefixes_bad[0]; i++)
    tap_ok(config_base_path_check(prefixes_bad[i], why, sizeof why) != 0 && why[0] != '\0',
           "prefix '%s' is refused (%s)", prefixes_bad[i], why);
  char longp[ACED_BASE_PATH_MAX + 2];
  memset(longp, 'x', sizeof longp - 1);
  longp[0] = '/';
  longp[ACED_BASE_PATH_MAX] = '\0';
  tap_ok(config_base_path_check(longp, why, sizeof why) == 0, "a prefix of ACED_BASE_PATH_MAX bytes is valid");
  longp[ACED_BASE_PATH_MAX] = 'x';
  longp[ACED_BASE_PATH_MAX + 1] = '\0';
  tap_ok(config_base_path_check(longp, why, sizeof why) != 0, "one byte more is refused (%s)", why);
  return tap_done();
}
