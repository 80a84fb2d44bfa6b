/*
 * model.h: models of libmea: the model file (mea-model(5)), the graph
 * engine that evaluates one, and the named architectures (part of libmea;
 * included by mea.h).
 *
 * A model is a list of nodes in topological order (every input of node i
 * is a node j < i), each tagged with the block it belongs to: the main
 * block (an ordinary classifier), and for a MEANet edge model the
 * adaptive block (on the raw image) and the extension block (on the main
 * block's feature map concatenated with the adaptive output).  Node 0 is
 * always the input image.  Weights are named f32 tensors held in one
 * arena; nodes refer to them by index.  Batch normalisation is stored
 * unfolded, with its running statistics, so a file can resume training;
 * an inference plan folds it into the preceding convolution.
 *
 * Ownership: a struct mea_model owns everything it points to and is freed
 * with mea_model_free; a struct mea_plan borrows its model (which must
 * outlive it) and owns its buffers.
 */
#ifndef MEA_MODEL_H
#define MEA_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mea.h"

/* ------------------------------------------------------------ file format */

#define MEA_MODEL_MAGIC       "MEAMODEL"  /* 8 bytes, no NUL */
#define MEA_MODEL_VERSION     1
#define MEA_MODEL_HEADER      128         /* bytes of the fixed header */
#define MEA_MODEL_CLASS_BYTES 64          /* one class name slot */
#define MEA_MODEL_INFO_BYTES  256         /* one key/value slot: 32 + 224 */
#define MEA_MODEL_NODE_BYTES  128         /* one node record */
#define MEA_MODEL_TENSOR_BYTES 96         /* one tensor table entry */
#define MEA_MODEL_NONE        0xffffffffu /* "no node/tensor" in the file */

/* Hard limits; the loader refuses anything beyond them (mea-model(5)). */
#define MEA_MODEL_MAX_NODES    4096
#define MEA_MODEL_MAX_TENSORS  16384
#define MEA_MODEL_MAX_CLASSES  65536
#define MEA_MODEL_MAX_INFO     64
#define MEA_MODEL_MAX_IN_C     64          /* input channels */
#define MEA_MODEL_MAX_IN_SIDE  4096        /* input height or width */
#define MEA_MODEL_MAX_CHANNELS 65536       /* channels or features of a node */
#define MEA_MODEL_MAX_KERNEL   15          /* kernel height or width */
#define MEA_MODEL_MAX_STRIDE   16
#define MEA_MODEL_MAX_ACT      (1u << 26)  /* elements of one node output, one image */
#define MEA_MODEL_MAX_WEIGHTS  (1u << 28)  /* f32 values in the whole file (1 GiB) */
#define MEA_MODEL_MAX_BATCH    4096        /* images in one plan */
#define MEA_MODEL_NODE_NAME    47          /* characters of a node name */
#define MEA_MODEL_KEY_LEN      31          /* characters of an info key */
#define MEA_MODEL_VALUE_LEN    223         /* characters of an info value */

/* ------------------------------------------------------------------ nodes */

enum mea_op {
	MEA_OP_INPUT = 1,   /* the image, normalised: [in_c][in_h][in_w] */
	MEA_OP_CONV,        /* K, R, S, stride, pad, groups; weight [K][C/groups][R][S], bias [K] */
	MEA_OP_BN,          /* eps, momentum; gamma, beta, running mean, running var [C] */
	MEA_OP_ADD,         /* two inputs of one shape */
	MEA_OP_CONCAT,      /* channel concatenation of two inputs of one H x W */
	MEA_OP_MAXPOOL,     /* R, S, stride, pad */
	MEA_OP_AVGPOOL,     /* R, S, stride, pad (padding not counted) */
	MEA_OP_GAP,         /* global average pool to [C][1][1] */
	MEA_OP_FC,          /* K outputs from the flattened input; weight [K][in], bias [K] */
	MEA_OP_LAST = MEA_OP_FC
};

enum mea_act { MEA_ACT_NONE = 0, MEA_ACT_RELU = 1, MEA_ACT_RELU6 = 2 };

enum mea_block {
	MEA_BLOCK_MAIN = 0,
	MEA_BLOCK_ADAPTIVE = 1,
	MEA_BLOCK_EXT = 2,
	MEA_NBLOCKS = 3
};
#define MEA_BLOCK_BIT(b) (1 << (b))
#define MEA_BLOCKS_ALL   7

/* Parameter slots of a node (index into param[]). */
enum {
	MEA_P_WEIGHT = 0, MEA_P_BIAS = 1,                 /* conv, fc */
	MEA_P_GAMMA = 0, MEA_P_BETA = 1, MEA_P_MEAN = 2, MEA_P_VAR = 3   /* bn */
};

struct mea_node {
	char name[MEA_MODEL_NODE_NAME + 1];
	int op;                /* enum mea_op */
	int block;             /* enum mea_block */
	int act;               /* enum mea_act, applied to the op's result */
	int ninputs;           /* 0..2 */
	int input[2];          /* earlier node indices, -1 when unused */
	int K, R, S;           /* conv: out channels, kernel; fc: K outputs; pool: window */
	int stride, pad, groups;
	int bias;              /* conv, fc: 1 when a bias tensor is present */
	float eps, momentum;   /* bn */
	int param[4];          /* tensor indices (slots above), -1 when unused */
	/* Derived by validation, never stored in the file: */
	int C, H, W;           /* the output of one image */
	uint64_t macs;         /* multiply-accumulates per image */
};

enum mea_tensor_kind {
	MEA_TK_PARAM = 0,      /* trained parameter: conv/fc weight or bias, bn gamma/beta */
	MEA_TK_BUFFER = 1,     /* bn running mean or variance */
	MEA_TK_STATE = 2       /* optimiser state of the parameter named by `of` */
};

struct mea_weight {
	char name[MEA_MAX_NAME + 1];
	int kind;              /* enum mea_tensor_kind */
	int ndim;              /* 1..4 */
	uint32_t dim[MEA_MAX_DIMS];
	size_t nelem;
	int of;                /* MEA_TK_STATE: its parameter's index; else -1 */
	int node;              /* derived: the node using it, -1 for state */
	float *data;           /* nelem floats inside the model's arena */
};

struct mea_model_info {
	char key[MEA_MODEL_KEY_LEN + 1];
	char value[MEA_MODEL_VALUE_LEN + 1];
};

struct mea_model {
	int in_c, in_h, in_w;
	float *mean, *std;             /* [in_c]: input = (pixel/255 - mean) / std */
	int nclasses;
	char (*class_name)[MEA_MODEL_CLASS_BYTES];   /* [nclasses], NUL-terminated */
	int nhard;
	int32_t *hard;                 /* [nhard] class ids, hardest first */
	float threshold;               /* T: offload when entropy > T (nats) */
	int node_logits;               /* main block output [nclasses] */
	int node_feat;                 /* main feature map the extension reads, or -1 */
	int node_ext;                  /* extension output [nhard], or -1 */
	int nnodes;
	struct mea_node *node;
	int ntensors;
	struct mea_weight *tensor;
	float *arena;                  /* every tensor's data, in table order */
	size_t arena_nelem;
	int ninfo;
	struct mea_model_info *info;   /* free-form key/value strings */
	uint64_t macs[MEA_NBLOCKS];    /* per image, per block (derived, checked) */
	uint64_t params[MEA_NBLOCKS];  /* parameter values per block (derived, checked) */
	int cap_nodes, cap_tensors;    /* builder bookkeeping */
};

/* ------------------------------------------------------------- the model */

/* Read and check a model file.  Any fault (missing file, bad magic,
 * truncation, a count beyond a limit, a wrong weight shape, a dangling
 * or cyclic connection, a non-finite value, inconsistent metadata) is
 * MEA_E_MODEL with a one-line message starting with path and naming the
 * node or tensor.  On success *mp is the model; free with mea_model_free. */
int mea_model_load(struct mea_model **mp, const char *path, struct mea_err *e);
/* The same from n bytes in memory; name is used in messages. */
int mea_model_decode(struct mea_model **mp, const void *p, size_t n,
		const char *name, struct mea_err *e);
/* Serialise m into a malloc'ed buffer (*buf, *len); caller frees *buf. */
int mea_model_encode(const struct mea_model *m, unsigned char **buf, size_t *len,
		struct mea_err *e);
/* Write m to path atomically (a temporary file renamed over path). */
int mea_model_save(const struct mea_model *m, const char *path, struct mea_err *e);
void mea_model_free(struct mea_model *m);

/* The one semantic check (shapes, connections, weights, metadata); it
 * also fills in the derived fields.  The loader and the builder call it;
 * call it again after changing a model by hand. */
int mea_model_check(struct mea_model *m, struct mea_err *e);

/* Building a model by hand (arch.c does this for the named architectures):
 * create with the input shape and class count (node 0, "image", is added),
 * add nodes, set node_logits (for MEANet also node_feat, before adding the
 * extension nodes that read it, node_ext, and mea_model_set_hard), then
 * finish.  A new model has mean 0, std 1, class names "0".."K-1",
 * no hard classes and T 0.8.  mea_model_add_node checks the node against
 * the nodes before it, creates its tensors ("NAME.weight", "NAME.bias",
 * "NAME.running_mean", "NAME.running_var") and stores its index in *idx.
 * mea_model_finish allocates the arena with neutral values (zeros; bn
 * gamma and running var 1) and runs mea_model_check; its faults are
 * MEA_E_ARG, since they are the caller's. */
int mea_model_create(struct mea_model **mp, int C, int H, int W, int nclasses,
		struct mea_err *e);
int mea_model_add_node(struct mea_model *m, const struct mea_node *spec, int *idx,
		struct mea_err *e);
int mea_model_finish(struct mea_model *m, struct mea_err *e);
/* The hard classes, hardest first (hard NULL: 0..nhard-1). */
int mea_model_set_hard(struct mea_model *m, int nhard, const int32_t *hard,
		struct mea_err *e);
/* Class k's name: 1..63 bytes without control characters. */
int mea_model_set_class_name(struct mea_model *m, int k, const char *name,
		struct mea_err *e);

/* Set or replace an info string (key: 1..31 of [A-Za-z0-9_.-]; value:
 * up to 223 bytes without control characters). */
int mea_model_set_info(struct mea_model *m, const char *key, const char *value,
		struct mea_err *e);
const char *mea_model_get_info(const struct mea_model *m, const char *key);
/* 1 when the model's info "test-flip" is "1": its class scores are the
 * mean over the image and its mirror image (see mea_plan_forward_tta),
 * which doubles the MACs of its main block per image. */
int mea_model_test_flip(const struct mea_model *m);

/* Random initialisation of the tensors of the blocks in mask
 * (MEA_BLOCK_BIT...), reproducible from seed: convolutions Kaiming-normal
 * with fan_out = K*R*S (std sqrt(2/fan_out)), fc weight and bias uniform
 * in +-1/sqrt(in), bn gamma 1, beta 0, running mean 0, var 1. */
void mea_model_init(struct mea_model *m, uint64_t seed, int mask);

/* Add a zeroed MEA_TK_STATE tensor ("PARAM.velocity") for every parameter
 * of the blocks in mask that has none yet, for an optimiser to keep
 * across runs.  Tensor data pointers stay valid only until the next call
 * that grows the arena (this one). */
int mea_model_add_state(struct mea_model *m, int mask, struct mea_err *e);
/* Remove the state tensors of the blocks in mask: a job that leaves a
 * block frozen has no use for its optimiser's state, and the model file
 * shipped to a device should not carry it. */
int mea_model_drop_state(struct mea_model *m, int mask, struct mea_err *e);
/* The state tensor of parameter t, or -1. */
int mea_model_state_of(const struct mea_model *m, int t);

/* A copy of m holding only the blocks in mask (which must include the
 * main block and be closed under the nodes' inputs): for instance the
 * main block alone, to ship as a plain classifier. */
int mea_model_extract(struct mea_model **out, const struct mea_model *m, int mask,
		struct mea_err *e);

int mea_model_find_node(const struct mea_model *m, const char *name);   /* -1 */
int mea_model_find_tensor(const struct mea_model *m, const char *name); /* -1 */
const char *mea_op_name(int op);        /* "conv", ... or NULL */
const char *mea_block_name(int block);  /* "main", "adaptive", "extension" */

/* A human-readable summary: input, classes, costs, and with verbose the
 * node list. */
void mea_model_print(FILE *f, const struct mea_model *m, int verbose);

/* Check that an image tensor (u8 or f32, [C][H][W]) fits the model's
 * input and write it normalised into x[in_c*in_h*in_w]:
 * (pixel/255 - mean[c]) / std[c] for u8; f32 pixels are taken to be
 * already scaled to [0, 1] (u8/255) and get the same normalisation.
 * A mismatch is MEA_E_FORMAT "image shape 3x32x32, expected 1x28x28";
 * a non-finite f32 pixel is MEA_E_FORMAT too. */
int mea_model_input(const struct mea_model *m, const struct mea_tensor *img,
		float *x, struct mea_err *e);

/* ------------------------------------------------------- named architectures */

struct mea_arch {
	const char *name;      /* resnet8..resnet110 (6n+2), resnet18, resnet34, mobilenetv2 */
	int in_c, in_h, in_w;
	int nclasses;
	float width;           /* channel multiplier; 0 means 1 */
	int meanet;            /* add the adaptive and extension blocks */
	int nhard;             /* extension classes; 0 means nclasses/2 */
	int adepth;            /* ResNets: BasicBlocks per stage of the adaptive
	                        * block, at most the main block's; 0 means 1 */
};

/* Build the architecture (tensors neutral as after mea_model_finish, not
 * yet random: call mea_model_init).  MEA_E_ARG for an unknown name or
 * impossible sizes. */
int mea_arch_build(struct mea_model **mp, const struct mea_arch *a, struct mea_err *e);
/* A one-line list of the architecture names, for --help. */
const char *mea_arch_list(void);
/* Copy the main block's tensors into the adaptive block's of the same
 * names ("adapt." + name): a ResNet's adaptive block is its trunk with
 * fewer BasicBlocks a stage (all of them: a copy).  MEA_E_ARG when one
 * has no counterpart of its size, or there is no adaptive block. */
int mea_arch_seed_adaptive(struct mea_model *m, struct mea_err *e);

/* ------------------------------------------------------------ graph engine */

/*
 * A plan evaluates the part of a model between the nodes it is given and
 * the nodes it is asked for, for up to `batch` images at a time.  Nodes in
 * a block of train_mask run in training mode (bn on batch statistics,
 * activations kept, gradients available); all others run in inference
 * mode with bn folded into the convolution before it, and their
 * activation buffers are shared wherever lifetimes allow.
 */
struct mea_plan_opts {
	int batch;             /* 1..MEA_MODEL_MAX_BATCH */
	int ninputs;           /* nodes whose values the caller provides */
	int input[4];
	int noutputs;          /* nodes whose values the caller wants */
	int output[4];
	int train_mask;        /* MEA_BLOCK_BIT()s of blocks to train; 0 = inference */
	int keep_stats;        /* training: leave bn running statistics alone (the
	                          second and later plans of a data-parallel step) */
	int plain;             /* inference without its own lowerings (row shifts,
	                          fused blocks): the sums training does, for tests */
	int row_shift;         /* training: stride-1 convolutions by row shifts,
	                          forward and backward (conv.c): faster, and other
	                          bits than the default im2col */
};

struct mea_plan;

/* Build a plan for model m (borrowed; a training plan updates its weights
 * and bn running statistics through the caller's optimiser and forward).
 * An inference plan folds bn into private copies of the convolution
 * weights when it is made: make a new plan after the weights change, and
 * none before mea_model_add_state, which moves every tensor.
 * Fails with MEA_E_ARG when an output needs a node that is not provided,
 * MEA_E_LIMIT when a buffer would be too large, MEA_E_NOMEM. */
int mea_plan_new(struct mea_plan **pp, struct mea_model *m,
		const struct mea_plan_opts *o, struct mea_err *e);
void mea_plan_free(struct mea_plan *p);

/* The buffer [batch][C][H][W] of a provided or wanted node, or of any node
 * of a training plan; NULL for an intermediate of an inference plan. */
float *mea_plan_value(struct mea_plan *p, int node);
/* Run forward on the first n images (1 <= n <= batch) of the inputs. */
int mea_plan_forward(struct mea_plan *p, int n, struct mea_err *e);

/* mea_plan_forward, and when the model asks for test-time flips
 * (mea_model_test_flip) node out's values become the mean of those of
 * the images and of their mirror images; the other outputs are those of
 * the images as given.  Costs two passes. */
int mea_plan_forward_tta(struct mea_plan *p, int n, int out, struct mea_err *e);

/* Training plans only.  Feature dropout for the next forwards: at each
 * trained channel concatenation, every channel of an input from frozen
 * blocks (MEANet's main-block features, in the extension's training) is
 * zeroed for an image with probability prob, and otherwise scaled by
 * 1/(1 - prob).  The choice is a hash of (seed, first + the image's index,
 * channel): give each plan of a data-parallel step the same seed and the
 * batch index of its first image.  prob 0 (the default): none. */
void mea_plan_set_drop(struct mea_plan *p, float prob, uint64_t seed, int first);

/* Training plans only.  Zero every activation and parameter gradient. */
void mea_plan_zero_grad(struct mea_plan *p);
/* The gradient buffer of a node's value (same layout as its value), NULL
 * when no trained parameter lies upstream of it. */
float *mea_plan_grad(struct mea_plan *p, int node);
/* Mean cross-entropy of node's output [n][K] against labels[n], with
 * label smoothing `smooth` (0: none); adds its gradient into the node's
 * gradient buffer. */
float mea_plan_xent(struct mea_plan *p, int node, const int32_t *labels, float smooth);
/* mea_plan_xent, distilled from teacher logits t[n][K] (mea_distill). */
float mea_plan_distill(struct mea_plan *p, int node, const int32_t *labels, float smooth,
		const float *t, float alpha, float tau);
/* Backward pass of the last forward: propagates the gradients set on the
 * wanted nodes and adds into the parameter gradients. */
int mea_plan_backward(struct mea_plan *p, struct mea_err *e);
/* Gradient of tensor t (parallel to its data), NULL when t is not a
 * trained parameter of this plan. */
float *mea_plan_param_grad(struct mea_plan *p, int t);

/* Bytes of buffers the plan holds (activations, workspace, folded weights). */
size_t mea_plan_bytes(const struct mea_plan *p);

/* Where the time goes (mea-main --profile).  With profiling on, every
 * forward step's wall time is summed across mea_plan_forward calls (two
 * clock reads a step and slice; off by default). */
void mea_plan_profile(struct mea_plan *p, int on);
struct mea_step_time {
	int node;              /* what the step computes: a convolution with
	                          a folded bn or a fused add counts as the
	                          convolution's node */
	int last;              /* the node whose value it writes: node, or for
	                          a fused inverted residual its projection */
	int block;             /* 1: a fused inverted residual (node is its
	                          expansion) */
	int fused_add;         /* 1: the step also does a residual add */
	int channels_last;     /* 1: it runs on channels-last values (nhwc.c) */
	uint64_t macs;         /* per image, of every node the step runs */
	double seconds;        /* summed wall time */
	uint64_t images;       /* images it ran on */
};
int mea_plan_nsteps(const struct mea_plan *p);
/* Step s (0 <= s < mea_plan_nsteps) in the order the steps run. */
void mea_plan_step_time(const struct mea_plan *p, int s, struct mea_step_time *t);

#endif
