/* Stand-in for <curl/curl.h>; see .cargo/config.toml. librdkafka's CMake build includes this header even
 * with curl disabled (WITH_CURL defined as 0) and then uses nothing from it. When curl is enabled, the
 * real header, found further along the include path, is used. */
#if defined(WITH_CURL) && WITH_CURL
#include_next <curl/curl.h>
#endif
