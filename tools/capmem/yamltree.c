/* SPDX-License-Identifier: MIT */
#include "yamltree.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct builder {
    ynode_t *stack[YTREE_MAX_DEPTH + 1];
    int depth;
    size_t nodes;
    ynode_t *root;
    ynode_t *pending_key[YTREE_MAX_DEPTH + 1]; /* for maps: a key waiting for its value */
} builder_t;

static ynode_t *node_new(ynode_kind_t kind, const yaml_mark_t *mark)
{
    ynode_t *n = calloc(1, sizeof(*n));
    if (n != NULL) {
        n->kind = kind;
        n->line = (int)mark->line + 1;
        n->column = (int)mark->column + 1;
    }
    return n;
}

void ytree_free(ynode_t *node)
{
    if (node == NULL) {
        return;
    }
    for (size_t i = 0; i < node->n; i++) {
        if (node->keys != NULL) {
            ytree_free(node->keys[i]);
        }
        ytree_free(node->items[i]);
    }
    free(node->keys);
    free(node->items);
    free(node->value);
    free(node);
}

static int push_item(ynode_t *parent, ynode_t *key, ynode_t *item)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        ynode_t **items = realloc(parent->items, cap * sizeof(*items));
        if (items == NULL) {
            return -1;
        }
        parent->items = items;
        if (parent->kind == Y_MAP) {
            ynode_t **keys = realloc(parent->keys, cap * sizeof(*keys));
            if (keys == NULL) {
                return -1;
            }
            parent->keys = keys;
        }
        parent->cap = cap;
    }
    if (parent->kind == Y_MAP) {
        parent->keys[parent->n] = key;
    }
    parent->items[parent->n++] = item;
    return 0;
}

/* Hang @p node under the open container (or make it the root); -1 with a message on failure. */
static int attach(builder_t *b, ynode_t *node, char *err, size_t errlen)
{
    if (b->depth == 0) {
        if (b->root != NULL) {
            snprintf(err, errlen, "%d:%d: a second document; a scenario file holds one", node->line,
                     node->column);
            ytree_free(node);
            return -1;
        }
        b->root = node;
        return 0;
    }
    ynode_t *parent = b->stack[b->depth - 1];
    if (parent->kind == Y_SEQ) {
        if (push_item(parent, NULL, node) != 0) {
            ytree_free(node);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    ynode_t **key = &b->pending_key[b->depth - 1];
    if (*key == NULL) {
        if (node->kind != Y_SCALAR) {
            snprintf(err, errlen, "%d:%d: a key must be a plain word, found %s", node->line,
                     node->column, ytree_kind_name(node));
            ytree_free(node);
            return -1;
        }
        for (size_t i = 0; i < parent->n; i++) {
            if (strcmp(parent->keys[i]->value, node->value) == 0) {
                snprintf(err, errlen, "%d:%d: key '%s' appears twice (first at line %d)",
                         node->line, node->column, node->value, parent->keys[i]->line);
                ytree_free(node);
                return -1;
            }
        }
        *key = node;
        return 0;
    }
    if (push_item(parent, *key, node) != 0) {
        ytree_free(node);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *key = NULL;
    return 0;
}

static void yaml_error(const yaml_parser_t *p, char *err, size_t errlen)
{
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->context != NULL) {
        snprintf(err, errlen, "%zu:%zu: %s %s (line %zu)", p->problem_mark.line + 1,
                 p->problem_mark.column + 1, problem, p->context, p->context_mark.line + 1);
    } else {
        snprintf(err, errlen, "%zu:%zu: %s", p->problem_mark.line + 1, p->problem_mark.column + 1,
                 problem);
    }
}

int ytree_parse(const char *buf, size_t len, ynode_t **out, char *err, size_t errlen)
{
    yaml_parser_t parser;
    builder_t b;
    memset(&b, 0, sizeof(b));
    *out = NULL;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    int rc = -1;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            yaml_error(&parser, err, errlen);
            break;
        }
        int done = 0;
        int bad = 0;
        ynode_t *node = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_ALIAS_EVENT:
            snprintf(err, errlen, "%zu:%zu: aliases (*%s) are not supported: write the value out",
                     ev.start_mark.line + 1, ev.start_mark.column + 1,
                     (const char *)ev.data.alias.anchor);
            bad = 1;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (++b.nodes > YTREE_MAX_NODES) {
                snprintf(err, errlen, "%zu:%zu: more than %d values in one file",
                         ev.start_mark.line + 1, ev.start_mark.column + 1, YTREE_MAX_NODES);
                bad = 1;
                break;
            }
            node = node_new(ev.type == YAML_SCALAR_EVENT           ? Y_SCALAR
                            : ev.type == YAML_SEQUENCE_START_EVENT ? Y_SEQ
                                                                   : Y_MAP,
                            &ev.start_mark);
            if (node == NULL) {
                snprintf(err, errlen, "out of memory");
                bad = 1;
                break;
            }
            if (ev.type == YAML_SCALAR_EVENT) {
                node->value = malloc(ev.data.scalar.length + 1);
                if (node->value == NULL) {
                    ytree_free(node);
                    snprintf(err, errlen, "out of memory");
                    bad = 1;
                    break;
                }
                memcpy(node->value, ev.data.scalar.value, ev.data.scalar.length);
                node->value[ev.data.scalar.length] = '\0';
                if (strlen(node->value) != ev.data.scalar.length) {
                    snprintf(err, errlen, "%d:%d: a value contains a NUL character", node->line,
                             node->column);
                    ytree_free(node);
                    bad = 1;
                    break;
                }
            }
            if (attach(&b, node, err, errlen) != 0) {
                bad = 1;
                break;
            }
            if (node->kind != Y_SCALAR) {
                if (b.depth == YTREE_MAX_DEPTH) {
                    snprintf(err, errlen, "%d:%d: nested more than %d levels deep", node->line,
                             node->column, YTREE_MAX_DEPTH);
                    bad = 1;
                    break;
                }
                b.pending_key[b.depth] = NULL;
                b.stack[b.depth++] = node;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (b.depth > 0) {
                b.depth--;
            }
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (bad) {
            break;
        }
        if (done) {
            rc = 0;
            break;
        }
    }
    yaml_parser_delete(&parser);
    /* A key left waiting (only possible after an error) belongs to no node yet. */
    for (int i = 0; i <= YTREE_MAX_DEPTH; i++) {
        if (i < b.depth && b.pending_key[i] != NULL) {
            ytree_free(b.pending_key[i]);
        }
    }
    if (rc != 0) {
        ytree_free(b.root);
        return -1;
    }
    *out = b.root;
    return 0;
}

ynode_t *ytree_get(ynode_t *map, const char *key)
{
    if (map == NULL || map->kind != Y_MAP) {
        return NULL;
    }
    for (size_t i = 0; i < map->n; i++) {
        if (strcmp(map->keys[i]->value, key) == 0) {
            return map->items[i];
        }
    }
    return NULL;
}

const char *ytree_kind_name(const ynode_t *node)
{
    if (node == NULL) {
        return "nothing";
    }
    switch (node->kind) {
    case Y_MAP:
        return "a map (key: value lines)";
    case Y_SEQ:
        return "a list (- items)";
    default:
        return "a single value";
    }
}
