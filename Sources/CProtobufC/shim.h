#ifndef SWAPLINE_CPROTOBUFC_SHIM_H
#define SWAPLINE_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
