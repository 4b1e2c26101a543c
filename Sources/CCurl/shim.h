#ifndef SWAPLINE_CCURL_SHIM_H
#define SWAPLINE_CCURL_SHIM_H
#include <curl/curl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call:
   these typed wrappers are the only way the Swift side sets options. */
static inline CURLcode swapline_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode swapline_curl_setopt_ptr(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode swapline_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode swapline_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode swapline_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode swapline_curl_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    return curl_easy_getinfo(handle, info, value);
}
/* Write, header and read callbacks share curl_write_callback's signature. */
static inline CURLcode swapline_curl_setopt_callback(CURL *handle, CURLoption option, curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLMcode swapline_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

/* Address pinning (SSRF protection, docs/security.md). */
static inline CURLcode swapline_curl_setopt_opensocket(CURL *handle, curl_opensocket_callback value) {
    return curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, value);
}
/* The default CURLOPT_OPENSOCKETFUNCTION does exactly this. */
static inline curl_socket_t swapline_curl_open_socket(const struct curl_sockaddr *address) {
    return socket(address->family, address->socktype, address->protocol);
}
/* Copies the IP address curl is about to connect to into out (16 bytes); returns 4 or 16, or
   0 for another family. */
static inline int swapline_curl_sockaddr_ip(const struct curl_sockaddr *address, unsigned char *out) {
    if (address->family == AF_INET && address->addrlen >= sizeof(struct sockaddr_in)) {
        memcpy(out, &((const struct sockaddr_in *)&address->addr)->sin_addr, 4);
        return 4;
    }
    if (address->family == AF_INET6 && address->addrlen >= sizeof(struct sockaddr_in6)) {
        memcpy(out, &((const struct sockaddr_in6 *)&address->addr)->sin6_addr, 16);
        return 16;
    }
    return 0;
}
/* inet_pton for either family into out (16 bytes); returns 4 or 16, or 0 when text is not a
   numeric address. */
static inline int swapline_parse_ip(const char *text, unsigned char *out) {
    if (inet_pton(AF_INET, text, out) == 1) return 4;
    if (inet_pton(AF_INET6, text, out) == 1) return 16;
    return 0;
}
/* A share handle holding only a DNS cache: an easy handle given one resolves (and keeps its
   CURLOPT_RESOLVE entries) apart from every other transfer of the multi handle. */
static inline CURLSH *swapline_curl_share_dns(void) {
    CURLSH *share = curl_share_init();
    if (share && curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
        curl_share_cleanup(share);
        return NULL;
    }
    return share;
}

/* getaddrinfo for TCP: writes up to max addresses into out as 17-byte records (a length byte,
   4 or 16, then the address padded to 16 bytes) and returns how many (0 for an unknown name
   or one without addresses), or a negative EAI_* code. Blocks: call it where blocking is allowed. */
static inline int swapline_resolve(const char *host, unsigned char *out, int max) {
    struct addrinfo hints;
    struct addrinfo *results = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int code = getaddrinfo(host, NULL, &hints, &results);
    if (code == EAI_NONAME) return 0;
#ifdef EAI_NODATA
    if (code == EAI_NODATA) return 0;
#endif
    if (code != 0) return code; /* glibc's EAI_* codes are negative */
    int count = 0;
    for (struct addrinfo *entry = results; entry && count < max; entry = entry->ai_next) {
        unsigned char *record = out + 17 * count;
        memset(record, 0, 17);
        if (entry->ai_family == AF_INET) {
            record[0] = 4;
            memcpy(record + 1, &((struct sockaddr_in *)entry->ai_addr)->sin_addr, 4);
        } else if (entry->ai_family == AF_INET6) {
            record[0] = 16;
            memcpy(record + 1, &((struct sockaddr_in6 *)entry->ai_addr)->sin6_addr, 16);
        } else {
            continue;
        }
        count++;
    }
    freeaddrinfo(results);
    return count;
}
#endif
