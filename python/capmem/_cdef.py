# SPDX-License-Identifier: MIT
"""The C declarations the binding uses, for cffi's ABI mode.

Everything here mirrors include/capmem/*.h. The test test_layout.py builds
a C program from these very declarations (tools/gen_layout.py) and compares
every size, offset, enum value and constant with what the C compiler says,
and checks that every public struct, field and enum constant of the headers
is mirrored: edit a header without editing this file and the suite fails.
"""

# The error codes, in the order of CAPMEM_ERRNO_MAP (include/capmem/error.h).
ERROR_NAMES = (
    "OK",
    "INVALID_ARGS",
    "INVALID_CAP",
    "WRONG_TYPE",
    "DENIED",
    "OUT_OF_RAM",
    "OUT_OF_METADATA",
    "OUT_OF_PHYS",
    "OUT_OF_CAPS",
    "REGION_CONFLICT",
    "UNRESOLVED_FAULT",
    "REVOKE_FIRST",
    "DELETE_FIRST",
    "RANGE",
    "NOT_ENOUGH_MEMORY",
    "NOT_ALLOCATED",
    "NOT_FOUND",
    "CYCLE",
    "FAULT_LOOP",
    "UNSUPPORTED",
    "SYSTEM",
    "HOST_NOMEM",
    "CORRUPT",
    "POLICY",
    "REENTRANT",
    "LIMIT_REACHED",
)

_ERR_ENUM = (
    "typedef enum capmem_err {\n"
    + "".join(f"    CAPMEM_E_{name} = {i},\n" for i, name in enumerate(ERROR_NAMES))
    + f"    CAPMEM_E__COUNT = {len(ERROR_NAMES)}\n"
    + "} capmem_err_t;\n"
)

CDEF = (
    _ERR_ENUM
    + r"""
#define CAPMEM_VERSION_MAJOR 0
#define CAPMEM_VERSION_MINOR 1
#define CAPMEM_VERSION_PATCH 0
const char *capmem_version(void);

/* error.h */
typedef struct capmem_error_info {
    capmem_err_t code;
    const char *function;
    uint64_t needed;
    uint64_t available;
    uint64_t address;
    uint64_t size;
    uint64_t bound_min;
    uint64_t bound_max;
    int argument;
    int sys_errno;
    char message[224];
} capmem_error_info_t;
const char *capmem_strerror(capmem_err_t err);
const char *capmem_err_name(capmem_err_t err);
const capmem_error_info_t *capmem_last_error(void);
void capmem_error_clear(void);
capmem_err_t capmem_error_set(capmem_err_t err, const char *fmt, ...);
void capmem_error_set_numbers(uint64_t needed, uint64_t available);

/* arena.h */
typedef struct capmem_arena capmem_arena_t;
typedef enum capmem_backing {
    CAPMEM_BACKING_MEMFD = 1,
    CAPMEM_BACKING_ANON_SHARED = 2,
} capmem_backing_t;
enum { CAPMEM_ARENA_FORCE_ANON = 1 };
#define CAPMEM_PAGE_SIZE_MIN 256
#define CAPMEM_PAGE_SIZE_MAX 1073741824
#define CAPMEM_ARENA_MAX_BYTES 140737488355328
#define CAPMEM_CAP_SLOTS_MAX 1073741824
typedef struct capmem_arena_attr {
    uint64_t ram_size;
    uint64_t page_size;
    uint64_t phys_base;
    uint64_t device_window;
    uint32_t cap_slots;
    uint32_t flags;
} capmem_arena_attr_t;
capmem_err_t capmem_arena_create(const capmem_arena_attr_t *attr, capmem_arena_t **out);
void capmem_arena_destroy(capmem_arena_t *arena);
uint64_t capmem_arena_ram_size(const capmem_arena_t *arena);
uint64_t capmem_arena_page_size(const capmem_arena_t *arena);
uint64_t capmem_arena_phys_base(const capmem_arena_t *arena);
capmem_backing_t capmem_arena_backing(const capmem_arena_t *arena);
const char *capmem_backing_name(capmem_backing_t backing);
int capmem_arena_fd(const capmem_arena_t *arena);
capmem_err_t capmem_arena_offset_to_phys(const capmem_arena_t *arena, uint64_t offset,
                                         uint64_t *phys);
capmem_err_t capmem_arena_phys_to_offset(const capmem_arena_t *arena, uint64_t phys,
                                         uint64_t *offset);
typedef struct capmem_device_info {
    uint32_t id;
    uint64_t phys;
    uint64_t size;
    uint64_t backing_offset;
} capmem_device_info_t;
#define CAPMEM_DEVICE_MAX 64
capmem_err_t capmem_arena_device_add(capmem_arena_t *arena, uint64_t phys, uint64_t size,
                                     capmem_device_info_t *out);
capmem_err_t capmem_arena_device_remove(capmem_arena_t *arena, uint32_t id);
capmem_err_t capmem_arena_devices(const capmem_arena_t *arena, capmem_device_info_t *out,
                                  size_t max, size_t *count);

/* alloc.h */
typedef struct capmem_alloc capmem_alloc_t;
typedef struct capmem_alloc_stats capmem_alloc_stats_t;
typedef enum { CAPMEM_BLOCK_FREE = 0, CAPMEM_BLOCK_USED = 1 } capmem_block_state_t;
typedef int (*capmem_alloc_walk_fn)(uint64_t offset, uint64_t size, capmem_block_state_t state,
                                    void *ctx);
typedef struct capmem_alloc_ops {
    const char *name;
    capmem_err_t (*alloc)(void *self, uint64_t size, uint64_t align, uint64_t *offset);
    capmem_err_t (*alloc_at)(void *self, uint64_t offset, uint64_t size);
    capmem_err_t (*free)(void *self, uint64_t offset, uint64_t size);
    uint64_t (*avail)(const void *self);
    uint64_t (*largest)(const void *self);
    void (*reset)(void *self);
    void (*destroy)(void *self);
    capmem_err_t (*check)(const void *self, char *why, size_t len);
    capmem_err_t (*walk)(const void *self, capmem_alloc_walk_fn fn, void *ctx);
    capmem_err_t (*stats)(const void *self, capmem_alloc_stats_t *out);
    capmem_err_t (*create)(void *ctx, uint64_t base, uint64_t size, uint64_t granule, void **self);
} capmem_alloc_ops_t;
#define CAPMEM_ALLOC_STATS_VERSION 1
typedef enum capmem_alloc_stats_source {
    CAPMEM_ALLOC_STATS_POLICY = 0,
    CAPMEM_ALLOC_STATS_WALK = 1,
    CAPMEM_ALLOC_STATS_COUNTS = 2,
} capmem_alloc_stats_source_t;
struct capmem_alloc_stats {
    uint32_t size;
    uint32_t version;
    uint64_t span;
    uint64_t free_bytes;
    uint64_t used_bytes;
    uint64_t largest_free;
    uint64_t free_blocks;
    uint64_t used_blocks;
    uint64_t requested;
    uint64_t align_loss;
    double fragmentation;
    uint32_t source;
    uint32_t reserved;
};
typedef enum capmem_alloc_kind {
    CAPMEM_ALLOC_DEFAULT = 0,
    CAPMEM_ALLOC_WATERMARK = 1,
    CAPMEM_ALLOC_RANGE = 2,
    CAPMEM_ALLOC_BUDDY = 3,
    CAPMEM_ALLOC_CUSTOM = 4,
} capmem_alloc_kind_t;
typedef struct capmem_alloc_policy {
    capmem_alloc_kind_t kind;
    const capmem_alloc_ops_t *ops;
    void *ctx;
} capmem_alloc_policy_t;
capmem_err_t capmem_alloc_create_policy(const capmem_alloc_policy_t *policy, uint64_t base,
                                        uint64_t size, uint64_t granule, capmem_alloc_t **out);
capmem_err_t capmem_alloc_policy_by_name(const char *name, capmem_alloc_policy_t *out);
capmem_err_t capmem_alloc_stats(const capmem_alloc_t *a, capmem_alloc_stats_t *out);
capmem_err_t capmem_alloc_create_watermark(uint64_t base, uint64_t size, capmem_alloc_t **out);
capmem_err_t capmem_alloc_create_range(uint64_t base, uint64_t size, uint64_t granule,
                                       capmem_alloc_t **out);
capmem_err_t capmem_alloc_create_buddy(uint64_t base, uint64_t size, unsigned min_order,
                                       unsigned max_order, capmem_alloc_t **out);
capmem_err_t capmem_alloc_create_custom(const capmem_alloc_ops_t *ops, void *self,
                                        capmem_alloc_t **out);
capmem_err_t capmem_alloc_create_custom_span(const capmem_alloc_ops_t *ops, void *self,
                                             uint64_t base, uint64_t size, capmem_alloc_t **out);
capmem_err_t capmem_alloc_alloc(capmem_alloc_t *a, uint64_t size, uint64_t align,
                                uint64_t *offset);
capmem_err_t capmem_alloc_alloc_at(capmem_alloc_t *a, uint64_t offset, uint64_t size);
capmem_err_t capmem_alloc_free(capmem_alloc_t *a, uint64_t offset, uint64_t size);
uint64_t capmem_alloc_avail(const capmem_alloc_t *a);
uint64_t capmem_alloc_largest(const capmem_alloc_t *a);
uint64_t capmem_alloc_base(const capmem_alloc_t *a);
uint64_t capmem_alloc_size(const capmem_alloc_t *a);
const char *capmem_alloc_name(const capmem_alloc_t *a);
void capmem_alloc_reset(capmem_alloc_t *a);
void capmem_alloc_destroy(capmem_alloc_t *a);
capmem_err_t capmem_alloc_check(const capmem_alloc_t *a, char *why, size_t len);
capmem_err_t capmem_alloc_walk(const capmem_alloc_t *a, capmem_alloc_walk_fn fn, void *ctx);
capmem_err_t capmem_alloc_free_ranges(const capmem_alloc_t *a, capmem_alloc_walk_fn fn,
                                      void *ctx);

/* cap.h */
typedef uint64_t capmem_cap_t;
typedef enum capmem_obj_type {
    CAPMEM_OBJ_NONE = 0,
    CAPMEM_OBJ_UNTYPED = 1,
    CAPMEM_OBJ_FRAME = 2,
    CAPMEM_OBJ_KOBJ = 3,
    CAPMEM_OBJ_RAM_SESSION = 4,
    CAPMEM_OBJ_DATASPACE = 5,
    CAPMEM_OBJ_REGION_MAP = 6,
    CAPMEM_OBJ_USER = 7,
    CAPMEM_OBJ_BANK = 8,
    CAPMEM_OBJ_BANK_NODE = 9,
    CAPMEM_OBJ_TYPE_COUNT = 10
} capmem_obj_type_t;
enum capmem_rights {
    CAPMEM_RIGHT_READ = 1,
    CAPMEM_RIGHT_WRITE = 2,
    CAPMEM_RIGHT_GRANT = 4,
    CAPMEM_RIGHTS_ALL = 7,
    CAPMEM_RIGHTS_TYPE = 120,
};
const char *capmem_obj_type_name(capmem_obj_type_t type);
typedef struct capmem_cap_info {
    capmem_cap_t cap;
    capmem_obj_type_t type;
    unsigned rights;
    bool original;
    capmem_cap_t parent;
    size_t children;
    uint64_t object_id;
    const char *name;
} capmem_cap_info_t;
typedef struct capmem_user_type {
    const char *name;
    void (*destroy)(void *object, void *ctx);
    void *ctx;
} capmem_user_type_t;
capmem_err_t capmem_cap_create_user(capmem_arena_t *arena, const capmem_user_type_t *type,
                                    void *object, unsigned rights, capmem_cap_t *out);
capmem_err_t capmem_cap_user_object(capmem_arena_t *arena, capmem_cap_t cap,
                                    const capmem_user_type_t *type, unsigned rights,
                                    void **object);
capmem_err_t capmem_cap_mint(capmem_arena_t *arena, capmem_cap_t src, unsigned rights,
                             capmem_cap_t *out);
capmem_err_t capmem_cap_delete(capmem_arena_t *arena, capmem_cap_t cap);
capmem_err_t capmem_cap_revoke(capmem_arena_t *arena, capmem_cap_t cap);
capmem_err_t capmem_cap_identify(capmem_arena_t *arena, capmem_cap_t cap,
                                 capmem_cap_info_t *info);
typedef int (*capmem_cap_visit_fn)(const capmem_cap_info_t *info, unsigned depth, void *ctx);
capmem_err_t capmem_cap_walk(capmem_arena_t *arena, capmem_cap_t root, capmem_cap_visit_fn fn,
                             void *ctx);
size_t capmem_cap_count(capmem_arena_t *arena);
capmem_err_t capmem_cap_check(capmem_arena_t *arena, char *why, size_t len);

/* untyped.h */
#define CAPMEM_UNTYPED_MIN_BITS 4
#define CAPMEM_UNTYPED_MAX_BITS 47
#define CAPMEM_RETYPE_MAX_COUNT 256
#define CAPMEM_UNTYPED_INDEX_UNIT 16
typedef enum capmem_untyped_policy {
    CAPMEM_UNTYPED_WATERMARK = 0,
    CAPMEM_UNTYPED_RANGE = 1,
    CAPMEM_UNTYPED_BUDDY = 2,
    CAPMEM_UNTYPED_INHERIT = 3,
} capmem_untyped_policy_t;
const char *capmem_untyped_policy_name(capmem_untyped_policy_t policy);
typedef struct capmem_retype_attr {
    capmem_obj_type_t type;
    unsigned size_bits;
    uint32_t count;
    uint64_t offset;
    capmem_untyped_policy_t child_policy;
} capmem_retype_attr_t;
typedef struct capmem_untyped_info {
    capmem_cap_t cap;
    uint64_t phys;
    uint64_t offset;
    unsigned size_bits;
    bool device;
    const char *policy;
    uint64_t free_bytes;
    uint64_t largest_free;
    uint64_t watermark;
    uint64_t children;
    bool full;
} capmem_untyped_info_t;
capmem_err_t capmem_untyped_boot(capmem_arena_t *arena, capmem_untyped_info_t *out, size_t max,
                                 size_t *count);
capmem_err_t capmem_untyped_add_device(capmem_arena_t *arena, uint32_t device_id,
                                       capmem_untyped_info_t *out, size_t max, size_t *count);
capmem_err_t capmem_untyped_set_policy(capmem_arena_t *arena, capmem_cap_t untyped,
                                       capmem_untyped_policy_t policy, capmem_alloc_t *user);
capmem_err_t capmem_untyped_retype(capmem_arena_t *arena, capmem_cap_t untyped,
                                   const capmem_retype_attr_t *attr, capmem_cap_t *dest,
                                   size_t dest_len);
capmem_err_t capmem_untyped_copy(capmem_arena_t *arena, capmem_cap_t untyped, capmem_cap_t *out);
capmem_err_t capmem_untyped_info(capmem_arena_t *arena, capmem_cap_t untyped,
                                 capmem_untyped_info_t *info);
typedef struct capmem_object_info {
    capmem_obj_type_t type;
    uint64_t phys;
    uint64_t offset;
    unsigned size_bits;
    bool device;
} capmem_object_info_t;
capmem_err_t capmem_object_info(capmem_arena_t *arena, capmem_cap_t obj,
                                capmem_object_info_t *info);
capmem_err_t capmem_frame_read(capmem_arena_t *arena, capmem_cap_t frame, uint64_t offset,
                               void *buf, size_t len);
capmem_err_t capmem_frame_write(capmem_arena_t *arena, capmem_cap_t frame, uint64_t offset,
                                const void *buf, size_t len);

/* ram.h */
#define CAPMEM_RAM_RECORD_SIZE 64
#define CAPMEM_RAM_SESSION_SLOTS 3
#define CAPMEM_RAM_DEFAULT_DONATION 65536
#define CAPMEM_RAM_DEFAULT_UPGRADE 8192
#define CAPMEM_RAM_DEFAULT_DATASPACES 1020
enum { CAPMEM_RAM_EXPANDING = 1 };
typedef struct capmem_ram_attr {
    uint64_t root_donation;
    uint64_t root_caps;
    uint32_t flags;
    capmem_alloc_policy_t policy;
} capmem_ram_attr_t;
capmem_err_t capmem_ram_create(capmem_arena_t *arena, const capmem_cap_t *untypeds, size_t n,
                               const capmem_ram_attr_t *attr, capmem_cap_t *root);
capmem_err_t capmem_ram_boot(capmem_arena_t *arena, const capmem_ram_attr_t *attr,
                             capmem_cap_t *root);
capmem_err_t capmem_ram_destroy(capmem_arena_t *arena, capmem_cap_t root);
typedef struct capmem_ram_open_attr {
    uint64_t donation;
    uint64_t quota;
    uint64_t caps;
    uint64_t upgrade_step;
    uint32_t flags;
    const char *label;
} capmem_ram_open_attr_t;
capmem_err_t capmem_ram_open(capmem_arena_t *arena, capmem_cap_t parent,
                             const capmem_ram_open_attr_t *attr, capmem_cap_t *out);
capmem_err_t capmem_ram_close(capmem_arena_t *arena, capmem_cap_t account);
capmem_err_t capmem_ram_transfer(capmem_arena_t *arena, capmem_cap_t from, capmem_cap_t to,
                                 uint64_t bytes);
capmem_err_t capmem_ram_transfer_caps(capmem_arena_t *arena, capmem_cap_t from,
                                      capmem_cap_t to, uint64_t count);
capmem_err_t capmem_ram_upgrade(capmem_arena_t *arena, capmem_cap_t session, capmem_cap_t payer,
                                uint64_t bytes);
capmem_err_t capmem_ram_set_expanding(capmem_arena_t *arena, capmem_cap_t account, bool on,
                                      uint64_t step);
typedef struct capmem_ram_info {
    capmem_cap_t ref;
    uint64_t quota;
    uint64_t used;
    uint64_t avail;
    uint64_t lent;
    uint64_t donation;
    uint64_t records_used;
    uint64_t records_capacity;
    uint64_t caps_limit;
    uint64_t caps_used;
    uint64_t upgrade_step;
    uint64_t upgrades;
    bool expanding;
    bool is_root;
    char label[24];
} capmem_ram_info_t;
capmem_err_t capmem_ram_info(capmem_arena_t *arena, capmem_cap_t account,
                             capmem_ram_info_t *info);
capmem_err_t capmem_ram_alloc(capmem_arena_t *arena, capmem_cap_t account, uint64_t size,
                              capmem_cap_t *ds);
typedef int (*capmem_ram_map_fn)(uint64_t phys, uint64_t size, bool used, void *ctx);
capmem_err_t capmem_ram_map(capmem_arena_t *arena, capmem_cap_t account, capmem_ram_map_fn fn,
                            void *ctx);

/* dataspace.h */
typedef enum capmem_ds_kind {
    CAPMEM_DS_RAM = 1,
    CAPMEM_DS_ALIAS_DEPENDENT = 2,
    CAPMEM_DS_ALIAS_FIRST_CLASS = 3,
    CAPMEM_DS_MANAGED = 4,
    CAPMEM_DS_BANK_FRAME = 5,
} capmem_ds_kind_t;
const char *capmem_ds_kind_name(capmem_ds_kind_t kind);
typedef enum capmem_alias_lifetime {
    CAPMEM_ALIAS_DEPENDENT = 0,
    CAPMEM_ALIAS_FIRST_CLASS = 1,
} capmem_alias_lifetime_t;
typedef struct capmem_alias_attr {
    bool writable;
    uint64_t offset;
    uint64_t size;
    capmem_alias_lifetime_t lifetime;
} capmem_alias_attr_t;
typedef struct capmem_ds_info {
    capmem_ds_kind_t kind;
    uint64_t size;
    uint64_t phys;
    uint64_t offset;
    bool writable;
    unsigned rights;
} capmem_ds_info_t;
capmem_err_t capmem_ds_info(capmem_arena_t *arena, capmem_cap_t ds, capmem_ds_info_t *info);
capmem_err_t capmem_ds_read(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset, void *buf,
                            size_t len);
capmem_err_t capmem_ds_write(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset,
                             const void *buf, size_t len);
capmem_err_t capmem_ds_alias(capmem_arena_t *arena, capmem_cap_t session, capmem_cap_t ds,
                             const capmem_alias_attr_t *attr, capmem_cap_t *out);
capmem_err_t capmem_ds_free(capmem_arena_t *arena, capmem_cap_t ds);

/* region_map.h */
#define CAPMEM_RM_SESSION_SLOTS 4
#define CAPMEM_RM_DEFAULT_DONATION 65536
#define CAPMEM_RM_DEFAULT_UPGRADE 8192
#define CAPMEM_RM_DEFAULT_REGIONS 1019
#define CAPMEM_RM_MAX_PAGES 4294967295
#define CAPMEM_RM_FAULT_RETRIES 8
enum { CAPMEM_RM_EXPANDING = 1 };
typedef enum capmem_rm_access {
    CAPMEM_RM_READ = 0,
    CAPMEM_RM_WRITE = 1,
    CAPMEM_RM_EXEC = 2,
} capmem_rm_access_t;
const char *capmem_rm_access_name(capmem_rm_access_t access);
typedef struct capmem_rm_open_attr {
    uint64_t size;
    uint64_t donation;
    uint64_t upgrade_step;
    uint32_t flags;
    const char *label;
    capmem_alloc_policy_t policy;
} capmem_rm_open_attr_t;
capmem_err_t capmem_rm_open(capmem_arena_t *arena, capmem_cap_t client,
                            const capmem_rm_open_attr_t *attr, capmem_cap_t *out);
capmem_err_t capmem_rm_upgrade(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t payer,
                               uint64_t bytes);
capmem_err_t capmem_rm_close(capmem_arena_t *arena, capmem_cap_t rm);
typedef struct capmem_rm_attach_attr {
    uint64_t size;
    uint64_t offset;
    uint64_t at;
    bool writable;
    bool executable;
} capmem_rm_attach_attr_t;
capmem_err_t capmem_rm_attach(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t ds,
                              const capmem_rm_attach_attr_t *attr, uint64_t *out);
capmem_err_t capmem_rm_detach(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address);
typedef struct capmem_rm_fault {
    capmem_cap_t rm;
    uint64_t address;
    capmem_rm_access_t access;
} capmem_rm_fault_t;
typedef enum capmem_rm_fault_result {
    CAPMEM_RM_FAULT_UNRESOLVED = 0,
    CAPMEM_RM_FAULT_RESOLVED = 1,
} capmem_rm_fault_result_t;
typedef capmem_rm_fault_result_t (*capmem_rm_fault_fn)(capmem_arena_t *arena,
                                                       const capmem_rm_fault_t *fault, void *ctx);
capmem_err_t capmem_rm_set_fault_handler(capmem_arena_t *arena, capmem_cap_t rm,
                                         capmem_rm_fault_fn fn, void *ctx);
typedef struct capmem_rm_state {
    bool faulted;
    bool pending;
    bool unresolved;
    capmem_rm_access_t access;
    uint64_t address;
    capmem_cap_t rm;
    uint64_t faults;
} capmem_rm_state_t;
capmem_err_t capmem_rm_state(capmem_arena_t *arena, capmem_cap_t rm, capmem_rm_state_t *state);
capmem_err_t capmem_rm_read(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address, void *buf,
                            size_t len);
capmem_err_t capmem_rm_write(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                             const void *buf, size_t len);
capmem_err_t capmem_rm_touch(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                             size_t len, capmem_rm_access_t access);
typedef struct capmem_rm_region {
    uint64_t address;
    uint64_t size;
    uint64_t offset;
    bool writable;
    bool executable;
    bool managed;
} capmem_rm_region_t;
capmem_err_t capmem_rm_lookup(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                              capmem_rm_region_t *out);
typedef struct capmem_rm_info {
    capmem_cap_t client;
    uint64_t size;
    uint64_t regions;
    uint64_t donation;
    uint64_t records_used;
    uint64_t records_capacity;
    uint64_t upgrade_step;
    uint64_t upgrades;
    uint64_t faults;
    bool expanding;
    bool has_handler;
    char label[24];
    void *real_base;
} capmem_rm_info_t;
capmem_err_t capmem_rm_info(capmem_arena_t *arena, capmem_cap_t rm, capmem_rm_info_t *info);
capmem_err_t capmem_rm_dataspace(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t *ds);

/* inspect.h */
typedef enum capmem_event_kind {
    CAPMEM_EVENT_CAP_DELETE = 1,
    CAPMEM_EVENT_REVOKE = 2,
    CAPMEM_EVENT_RETYPE = 3,
    CAPMEM_EVENT_TRANSFER = 4,
    CAPMEM_EVENT_DONATE = 5,
    CAPMEM_EVENT_UPGRADE = 6,
    CAPMEM_EVENT_FAULT = 7,
    CAPMEM_EVENT_SESSION_CLOSE = 8,
    CAPMEM_EVENT_LOST = 9,
    CAPMEM_EVENT_TRANSFER_CAPS = 10,
    CAPMEM_EVENT_DS_ALLOC = 11,
    CAPMEM_EVENT_DS_FREE = 12,
    CAPMEM_EVENT_ALIAS = 13,
    CAPMEM_EVENT_ATTACH = 14,
    CAPMEM_EVENT_DETACH = 15,
    CAPMEM_EVENT_FAULT_RESOLVED = 16,
    CAPMEM_EVENT_DEVICE_ADD = 17,
    CAPMEM_EVENT_DEVICE_REMOVE = 18,
    CAPMEM_EVENT_MINT = 19,
    CAPMEM_EVENT_UNTYPED_NEW = 20,
    CAPMEM_EVENT_SERVICE_NEW = 21,
    CAPMEM_EVENT_SET_POLICY = 22,
    CAPMEM_EVENT_SET_EXPANDING = 23,
    CAPMEM_EVENT_SET_FAULT_HANDLER = 24,
    CAPMEM_EVENT_USER_NEW = 25,
    CAPMEM_EVENT_MANAGED_NEW = 26,
    CAPMEM_EVENT_KERNEL_HEAP = 27,
    CAPMEM_EVENT_BANK = 28,
    CAPMEM_EVENT_BANK_ALLOC = 29,
    CAPMEM_EVENT_BANK_FREE = 30,
    CAPMEM_EVENT_KIND_COUNT = 31
} capmem_event_kind_t;
#define CAPMEM_EVENT_ALL 4294967295
typedef struct capmem_event {
    capmem_event_kind_t kind;
    capmem_cap_t cap;
    uint64_t a;
    uint64_t b;
    const char *message;
    capmem_cap_t other;
    uint64_t offset;
    uint64_t size;
    uint64_t seq;
    capmem_cap_t payer;
} capmem_event_t;
typedef void (*capmem_event_fn)(capmem_arena_t *arena, const capmem_event_t *event, void *ctx);
typedef uint64_t capmem_subscription_t;
#define CAPMEM_SUBSCRIBERS_MAX 15
capmem_err_t capmem_subscribe(capmem_arena_t *arena, unsigned mask, capmem_event_fn fn,
                              void *ctx, capmem_subscription_t *out);
capmem_err_t capmem_unsubscribe(capmem_arena_t *arena, capmem_subscription_t sub);
capmem_err_t capmem_arena_set_event_handler(capmem_arena_t *arena, capmem_event_fn fn,
                                            void *ctx);
#define CAPMEM_TRACE_VERSION 1
capmem_err_t capmem_trace_start(capmem_arena_t *arena, FILE *out, unsigned mask);
capmem_err_t capmem_trace_stop(capmem_arena_t *arena);
const char *capmem_event_kind_name(capmem_event_kind_t kind);
typedef struct capmem_stat {
    uint64_t current;
    uint64_t peak;
    uint64_t total;
} capmem_stat_t;
#define CAPMEM_STATS_VERSION 2
typedef struct capmem_stats {
    uint64_t size;
    uint32_t version;
    uint32_t reserved;
    capmem_stat_t caps;
    capmem_stat_t records;
    capmem_stat_t dataspaces;
    capmem_stat_t aliases;
    capmem_stat_t regions;
    capmem_stat_t bytes_lent;
    uint64_t faults_read;
    uint64_t faults_write;
    uint64_t faults_exec;
    uint64_t faults_resolved;
    uint64_t upgrades;
    uint64_t retypes;
    uint64_t revokes;
    uint64_t bytes_zeroed;
    capmem_stat_t kernel_records;
    capmem_stat_t banks;
    capmem_stat_t bank_frames;
} capmem_stats_t;
capmem_err_t capmem_stats(capmem_arena_t *arena, capmem_stats_t *out);
typedef enum capmem_dump_format {
    CAPMEM_DUMP_TEXT = 0,
    CAPMEM_DUMP_JSON = 1,
    CAPMEM_DUMP_DOT = 2,
    CAPMEM_DUMP_SVG = 3
} capmem_dump_format_t;
#define CAPMEM_DUMP_VERSION 1
enum capmem_dump_sections {
    CAPMEM_DUMP_CAPS = 1,
    CAPMEM_DUMP_UNTYPED = 2,
    CAPMEM_DUMP_RAM = 4,
    CAPMEM_DUMP_PHYS = 8,
    CAPMEM_DUMP_RM = 16,
    CAPMEM_DUMP_KERNEL = 32,
    CAPMEM_DUMP_STATS = 64,
    CAPMEM_DUMP_ALL = 127
};
typedef struct capmem_dump_opts {
    uint64_t size;
    capmem_dump_format_t format;
    uint32_t sections;
    capmem_cap_t root;
} capmem_dump_opts_t;
capmem_err_t capmem_dump(capmem_arena_t *arena, FILE *out, capmem_dump_format_t format);
capmem_err_t capmem_dump_ex(capmem_arena_t *arena, FILE *out, const capmem_dump_opts_t *opts);
capmem_err_t capmem_check(capmem_arena_t *arena, char *why, size_t len);

/* rm_real.h */
#define CAPMEM_RM_REAL_MAX_VIEWS 64
#define CAPMEM_RM_REAL_DEFAULT_BUDGET 16384
enum { CAPMEM_RM_REAL_READONLY = 1 };
capmem_err_t capmem_rm_real_map(capmem_arena_t *arena, capmem_cap_t rm, unsigned flags,
                                void **base);
capmem_err_t capmem_rm_real_unmap(capmem_arena_t *arena, capmem_cap_t rm);
capmem_err_t capmem_rm_real_prefault(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                                     size_t len, capmem_rm_access_t access);
capmem_err_t capmem_rm_real_set_budget(capmem_arena_t *arena, uint32_t pieces);
typedef struct capmem_rm_real_stats {
    uint32_t views;
    uint32_t budget;
    uint32_t pieces;
    uint64_t faults;
    uint64_t spurious;
    uint64_t mapped;
    uint64_t dropped;
    uint64_t evicted;
} capmem_rm_real_stats_t;
capmem_err_t capmem_rm_real_stats(capmem_arena_t *arena, capmem_rm_real_stats_t *out);

/* kernel.h */
typedef enum capmem_kernel_strategy {
    CAPMEM_KERNEL_FIXED = 1,
    CAPMEM_KERNEL_HYBRID = 2,
    CAPMEM_KERNEL_CONSERVATIVE = 3,
} capmem_kernel_strategy_t;
const char *capmem_kernel_strategy_name(capmem_kernel_strategy_t s);
typedef enum capmem_kernel_heap_op {
    CAPMEM_KERNEL_HEAP_BOOT = 1,
    CAPMEM_KERNEL_HEAP_GROW = 2,
    CAPMEM_KERNEL_HEAP_RELEASE = 3,
} capmem_kernel_heap_op_t;
#define CAPMEM_KERNEL_RECORD_SIZE 48
#define CAPMEM_KERNEL_RECORD_MIN 48
typedef struct capmem_kernel_attr {
    capmem_kernel_strategy_t strategy;
    uint64_t record_size;
    uint64_t image_frames;
    uint64_t device_frames;
} capmem_kernel_attr_t;
capmem_err_t capmem_kernel_boot(capmem_arena_t *arena, const capmem_kernel_attr_t *attr);
capmem_err_t capmem_kernel_end_boot(capmem_arena_t *arena, uint64_t keep_device_frames);
typedef struct capmem_kernel_info {
    capmem_kernel_strategy_t strategy;
    uint64_t record_size;
    uint64_t image_frames;
    uint64_t boot_heap_frames;
    uint64_t heap_frames;
    uint64_t borrowed_frames;
    uint64_t released_frames;
    uint64_t records_capacity;
    uint64_t records_used;
    uint64_t ram_records;
    uint64_t device_records;
    uint64_t device_reserve;
    uint64_t kernel_frames;
    bool boot_ended;
} capmem_kernel_info_t;
capmem_err_t capmem_kernel_info(capmem_arena_t *arena, capmem_kernel_info_t *info);
enum {
    CAPMEM_KERNEL_FRAME_RAM = 1,
    CAPMEM_KERNEL_FRAME_DEVICE = 2,
    CAPMEM_KERNEL_FLAG_KERNEL = 1,
    CAPMEM_KERNEL_FLAG_PINNED = 2,
    CAPMEM_KERNEL_FLAG_NOZERO = 4,
    CAPMEM_KERNEL_FLAG_BANK = 8,
};
typedef struct capmem_kernel_frame {
    uint64_t phys;
    uint32_t type;
    uint32_t flags;
    uint32_t alloc_count;
    uint32_t device;
    uint64_t record_phys;
    bool owned;
} capmem_kernel_frame_t;
capmem_err_t capmem_kernel_frame(capmem_arena_t *arena, uint64_t phys, capmem_kernel_frame_t *out);

/* bank.h */
typedef enum capmem_bank_type {
    CAPMEM_BANK_FRAME = 0,
    CAPMEM_BANK_NODE = 1,
} capmem_bank_type_t;
#define CAPMEM_BANK_TYPES 2
#define CAPMEM_BANK_UNLIMITED 18446744073709551615
#define CAPMEM_BANK_MAX_OBJECTS 3
#define CAPMEM_BANK_SERVICE_SLOTS 5
enum capmem_bank_rights {
    CAPMEM_BANK_RIGHT_QUERY = 1,
    CAPMEM_BANK_RIGHT_LIMITS = 2,
    CAPMEM_BANK_RIGHT_ALLOC = 8,
    CAPMEM_BANK_RIGHT_FREE = 16,
    CAPMEM_BANK_RIGHT_DESTROY = 32,
    CAPMEM_BANK_RIGHT_REMOVE = 64,
    CAPMEM_BANK_RIGHTS_ALL = 127,
};
enum capmem_bank_restriction {
    CAPMEM_BANK_NO_ALLOC = 8,
    CAPMEM_BANK_NO_FREE = 16,
    CAPMEM_BANK_NO_DESTROY = 32,
    CAPMEM_BANK_NO_QUERY_LIMITS = 1,
    CAPMEM_BANK_NO_CHANGE_LIMITS = 2,
    CAPMEM_BANK_NO_REMOVE = 64,
};
typedef enum capmem_bank_op {
    CAPMEM_BANK_OP_SERVICE = 1,
    CAPMEM_BANK_OP_CREATE = 2,
    CAPMEM_BANK_OP_DESTROY = 3,
    CAPMEM_BANK_OP_REMOVE = 4,
    CAPMEM_BANK_OP_LIMITS = 5,
    CAPMEM_BANK_OP_GROW = 6,
} capmem_bank_op_t;
typedef struct capmem_bank_service_attr {
    uint64_t donation;
    uint64_t frames;
} capmem_bank_service_attr_t;
capmem_err_t capmem_bank_service_create(capmem_arena_t *arena, capmem_cap_t account,
                                        const capmem_bank_service_attr_t *attr,
                                        capmem_cap_t *prime);
capmem_err_t capmem_bank_service_destroy(capmem_arena_t *arena, capmem_cap_t prime);
typedef struct capmem_bank_limits {
    uint64_t limit[2];
} capmem_bank_limits_t;
capmem_err_t capmem_bank_create(capmem_arena_t *arena, capmem_cap_t parent,
                                const capmem_bank_limits_t *limits, capmem_cap_t *out);
capmem_err_t capmem_bank_alloc(capmem_arena_t *arena, capmem_cap_t bank,
                               const capmem_bank_type_t *types, size_t count, capmem_cap_t *out);
capmem_err_t capmem_bank_free(capmem_arena_t *arena, capmem_cap_t bank, const capmem_cap_t *objs,
                              size_t count);
capmem_err_t capmem_bank_destroy(capmem_arena_t *arena, capmem_cap_t bank);
capmem_err_t capmem_bank_remove(capmem_arena_t *arena, capmem_cap_t bank);
capmem_err_t capmem_bank_set_limits(capmem_arena_t *arena, capmem_cap_t bank,
                                    const capmem_bank_limits_t *limits);
typedef struct capmem_bank_info {
    uint64_t limit[2];
    uint64_t used[2];
    uint64_t own[2];
    uint64_t avail[2];
    uint64_t effective[2];
    uint32_t depth;
    uint32_t children;
    unsigned rights;
    bool is_prime;
    bool is_kernel;
} capmem_bank_info_t;
capmem_err_t capmem_bank_info(capmem_arena_t *arena, capmem_cap_t bank, capmem_bank_info_t *info);
capmem_err_t capmem_bank_restrict(capmem_arena_t *arena, capmem_cap_t bank, unsigned restrictions,
                                  capmem_cap_t *out);
capmem_err_t capmem_bank_owns(capmem_arena_t *arena, capmem_cap_t bank, capmem_cap_t obj,
                              bool *owns);

/* conform.h */
typedef enum capmem_conform_property {
    CAPMEM_CONFORM_INSIDE_ALIGNED = 0,
    CAPMEM_CONFORM_NO_OVERLAP = 1,
    CAPMEM_CONFORM_FREE = 2,
    CAPMEM_CONFORM_COUNTS = 3,
    CAPMEM_CONFORM_LARGEST = 4,
    CAPMEM_CONFORM_RESET = 5,
    CAPMEM_CONFORM_CHECK = 6,
    CAPMEM_CONFORM_ALLOC_AT = 7,
    CAPMEM_CONFORM_PROPERTIES = 8
} capmem_conform_property_t;
const char *capmem_conform_property_name(capmem_conform_property_t property);
typedef struct capmem_conform_attr {
    uint64_t seed;
    uint32_t sequences;
    uint32_t ops;
    uint64_t base;
    uint64_t size;
    uint64_t granule;
    FILE *report;
} capmem_conform_attr_t;
typedef struct capmem_conform_violation {
    uint64_t seed;
    uint32_t length;
    uint32_t original;
    char what[200];
} capmem_conform_violation_t;
typedef struct capmem_conform_result {
    uint32_t violated;
    uint32_t sequences;
    uint64_t ops;
    uint64_t seed;
    capmem_conform_violation_t violation[8];
    char report[8192];
} capmem_conform_result_t;
capmem_err_t capmem_conform_run(const capmem_alloc_policy_t *policy,
                                const capmem_conform_attr_t *attr, capmem_conform_result_t *out);
"""
)

# The C library's stdio, for traces and dumps written to memory or files.
LIBC_CDEF = r"""
FILE *fopen(const char *path, const char *mode);
FILE *open_memstream(char **ptr, size_t *sizeloc);
int fflush(FILE *stream);
int fclose(FILE *stream);
void free(void *ptr);
"""

# The structs mirrored here, for the layout test (every one must match C).
STRUCTS = (
    "capmem_error_info_t",
    "capmem_arena_attr_t",
    "capmem_device_info_t",
    "capmem_alloc_ops_t",
    "struct capmem_alloc_stats",
    "capmem_alloc_policy_t",
    "capmem_cap_info_t",
    "capmem_user_type_t",
    "capmem_retype_attr_t",
    "capmem_untyped_info_t",
    "capmem_object_info_t",
    "capmem_ram_attr_t",
    "capmem_ram_open_attr_t",
    "capmem_ram_info_t",
    "capmem_alias_attr_t",
    "capmem_ds_info_t",
    "capmem_rm_open_attr_t",
    "capmem_rm_attach_attr_t",
    "capmem_rm_fault_t",
    "capmem_rm_state_t",
    "capmem_rm_region_t",
    "capmem_rm_info_t",
    "capmem_event_t",
    "capmem_stat_t",
    "capmem_stats_t",
    "capmem_dump_opts_t",
    "capmem_rm_real_stats_t",
    "capmem_kernel_attr_t",
    "capmem_kernel_info_t",
    "capmem_kernel_frame_t",
    "capmem_bank_service_attr_t",
    "capmem_bank_limits_t",
    "capmem_bank_info_t",
    "capmem_conform_attr_t",
    "capmem_conform_violation_t",
    "capmem_conform_result_t",
)
