/*
 * A self-signed certificate (valid until 2126) for unit tests that need a
 * well-formed trust anchor but never complete a TLS handshake.
 */
#ifndef ONRAMP_TEST_ANCHOR_H
#define ONRAMP_TEST_ANCHOR_H

static const char anchor[] = "-----BEGIN CERTIFICATE-----\n"
			     "MIIBmzCCAUGgAwIBAgIUdhja+wLg+HUTZLZ2rnoIpbFEKSQwCgYIKoZIzj0EAwIw\n"
			     "IjEgMB4GA1UEAwwXb25yYW1wIHVuaXQgdGVzdCBhbmNob3IwIBcNMjYxMTI5MTYx\n"
			     "MTU0WhgPMjEyNjExMDUxNjExNTRaMCIxIDAeBgNVBAMMF29ucmFtcCB1bml0IHRl\n"
			     "c3QgYW5jaG9yMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEK31f9VV74XprlrXd\n"
			     "dqH9Xp0CwzGjaWUqXTCG/rQyupeIe1NIY86TpEboIrPwp4XfM8k6YdoAgeeabVFT\n"
			     "xts9ZaNTMFEwHQYDVR0OBBYEFKH7CTFRvIJBedyupk37ptXGTvuzMB8GA1UdIwQY\n"
			     "MBaAFKH7CTFRvIJBedyupk37ptXGTvuzMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI\n"
			     "zj0EAwIDSAAwRQIgHmNg+qwIO+54FqRsNSrh0em2G2Eof0aMR2/mm7F/oNoCIQDY\n"
			     "bxKx9UwQ3cJs4xt57MPVn0FUFS0Y73rlDAJ+gBYOrg==\n"
			     "-----END CERTIFICATE-----\n";

#endif
