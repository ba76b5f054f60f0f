/* SPDX-License-Identifier: MIT */
/*
 * A YAML document read into a small tree of maps, lists and scalars, each
 * node with the line and column it starts at, so that every complaint about
 * a scenario file can name the place. Scalars stay text: the scenario
 * reader gives them their types (sizes with units, names, booleans), which
 * is what lets it say exactly what it expected.
 */
#ifndef CAPMEM_TOOL_YAMLTREE_H
#define CAPMEM_TOOL_YAMLTREE_H

#include <stddef.h>
#include <stdio.h>

typedef enum ynode_kind { Y_SCALAR, Y_MAP, Y_SEQ } ynode_kind_t;

typedef struct ynode ynode_t;
struct ynode {
    ynode_kind_t kind;
    int line;    /* 1-based */
    int column;  /* 1-based */
    char *value; /* scalars: the text; NULL otherwise */
    /* maps: n pairs, keys[i] (a scalar) -> items[i]; lists: items[0..n) */
    ynode_t **keys;
    ynode_t **items;
    size_t n;
    size_t cap;
    int used; /* maps: set by the reader on keys it knows (see scenario.c) */
};

/* Deepest nesting accepted: a scenario needs four levels; this bounds the recursion. */
#define YTREE_MAX_DEPTH 32
/* Most nodes in one document. */
#define YTREE_MAX_NODES 200000

/*
 * Parse @p len bytes as one YAML document. On success *out is the root (a
 * document with no content gives NULL) and 0 is returned; on failure -1,
 * with "LINE:COLUMN: what went wrong" in @p err.
 */
int ytree_parse(const char *buf, size_t len, ynode_t **out, char *err, size_t errlen);

void ytree_free(ynode_t *node);

/* The value under @p key in map @p map, or NULL. */
ynode_t *ytree_get(ynode_t *map, const char *key);

/* "a map", "a list" or "a scalar", for messages. */
const char *ytree_kind_name(const ynode_t *node);

#endif
