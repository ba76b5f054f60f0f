/* SPDX-License-Identifier: MIT */
/**
 * @file capmem.h
 * @brief Umbrella header of libcapmem: include this one.
 *
 * The layers, bottom to top (each one uses only those beneath it):
 * arena (the stand-in for physical RAM), alloc (allocation policies),
 * cap (the capability space), untyped (seL4 retype), ram (Genode's RAM
 * service), dataspace, region_map (and rm_real, its real mode), inspect. See docs/ for the
 * concepts.
 */
#ifndef CAPMEM_H
#define CAPMEM_H

#include "capmem/version.h"
#include "capmem/error.h"
#include "capmem/arena.h"
#include "capmem/alloc.h"
#include "capmem/conform.h"
#include "capmem/cap.h"
#include "capmem/inspect.h"
#include "capmem/untyped.h"
#include "capmem/ram.h"
#include "capmem/dataspace.h"
#include "capmem/region_map.h"
#include "capmem/rm_real.h"
#include "capmem/kernel.h"
#include "capmem/bank.h"

#endif /* CAPMEM_H */
