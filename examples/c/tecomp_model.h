/* tecomp_model.h: the C ABI of a model library exported by tecomp.graph (GraphModule.export_library).
 *
 * One shared object holds the kernels, the weights and a graph executor. Link against it, or
 * dlopen it and look the functions up with dlsym (the *_fn typedefs below; see run_model.c).
 *
 * Buffers are compact row-major arrays of the shape and dtype tecomp_model_input(i) /
 * tecomp_model_output(i) describe; outputs must not overlap inputs. A tecomp_model holds the
 * scratch arena of one run at a time: use one per thread. Functions returning int32_t return 0
 * on success, -1 for a NULL argument, otherwise the nonzero code of the kernel that failed.
 * tecomp_model_info() returns the JSON metadata (format "tecomp-graph", format_version, inputs,
 * outputs, steps, memory plan) that the Python loader reads.
 */
#ifndef TECOMP_MODEL_H
#define TECOMP_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const char* name;       /* the graph's name for the value */
  const char* dtype;      /* "float32", "int64", ... */
  int32_t ndim;
  const int64_t* shape;   /* ndim entries */
  int64_t nbytes;         /* bytes of the whole buffer */
} tecomp_tensor_info;

typedef struct tecomp_model tecomp_model;

const char* tecomp_model_info(void);
int32_t tecomp_model_num_inputs(void);
const tecomp_tensor_info* tecomp_model_input(int32_t i);   /* NULL when i is out of range */
int32_t tecomp_model_num_outputs(void);
const tecomp_tensor_info* tecomp_model_output(int32_t i);
int32_t tecomp_model_num_steps(void);
const char* tecomp_model_step_label(int32_t i);            /* the operators a step runs, e.g. "conv2d_nchwc+add+relu" */
tecomp_model* tecomp_model_create(void);                   /* NULL when the arena cannot be allocated */
void tecomp_model_destroy(tecomp_model* model);
int32_t tecomp_model_run(tecomp_model* model, void* const* inputs, void* const* outputs);
int32_t tecomp_model_profile(tecomp_model* model, void* const* inputs, void* const* outputs,
                             double* seconds_per_step);     /* tecomp_model_num_steps() entries */
const void* tecomp_model_weights_data(void);
uint64_t tecomp_model_weights_size(void);

typedef const char* (*tecomp_model_info_fn)(void);
typedef int32_t (*tecomp_model_count_fn)(void);
typedef const tecomp_tensor_info* (*tecomp_model_tensor_fn)(int32_t i);
typedef const char* (*tecomp_model_step_label_fn)(int32_t i);
typedef tecomp_model* (*tecomp_model_create_fn)(void);
typedef void (*tecomp_model_destroy_fn)(tecomp_model* model);
typedef int32_t (*tecomp_model_run_fn)(tecomp_model* model, void* const* inputs, void* const* outputs);
typedef int32_t (*tecomp_model_profile_fn)(tecomp_model* model, void* const* inputs, void* const* outputs,
                                           double* seconds_per_step);

#ifdef __cplusplus
}
#endif

#endif /* TECOMP_MODEL_H */
