#ifndef SWAPLINE_CSQLITE_SHIM_H
#define SWAPLINE_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
