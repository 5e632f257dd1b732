#ifndef SYNOD_CLMDB_SHIM_H
#define SYNOD_CLMDB_SHIM_H
#include <lmdb.h>
#endif
