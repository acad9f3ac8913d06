/* run_model: load a tecomp model library with dlopen, feed it inputs, run it, print the outputs.
 *
 *   gcc -O2 -o run_model run_model.c -ldl
 *   ./run_model model.so [input0.bin input1.bin ...] [--profile]
 *
 * Each input file holds the raw bytes of one input (numpy: x.astype("float32").tofile("x.bin"));
 * without files, float inputs are filled with a fixed pattern. Prints each output's name, shape
 * and values (at most 64 per output, %.9g), then the per-step times with --profile.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tecomp_model.h"

static void* need(void* lib, const char* name) {
  void* sym = dlsym(lib, name);
  if (!sym) {
    fprintf(stderr, "run_model: the library exports no %s (is it a tecomp model?)\n", name);
    exit(2);
  }
  return sym;
}

static void* read_input(const tecomp_tensor_info* info, const char* path) {
  void* data = malloc(info->nbytes ? (size_t)info->nbytes : 1);
  if (!data) { fprintf(stderr, "run_model: out of memory\n"); exit(2); }
  if (!path) {
    if (strcmp(info->dtype, "float32") != 0) { memset(data, 0, (size_t)info->nbytes); return data; }
    float* f = (float*)data;
    for (int64_t i = 0; i < info->nbytes / 4; ++i) f[i] = (float)((i % 17) - 8) / 8.0f;
    return data;
  }
  FILE* file = fopen(path, "rb");
  if (!file) { fprintf(stderr, "run_model: cannot open %s\n", path); exit(2); }
  size_t got = fread(data, 1, (size_t)info->nbytes, file);
  int extra = fgetc(file) != EOF;
  fclose(file);
  if (got != (size_t)info->nbytes || extra) {
    fprintf(stderr, "run_model: %s must hold exactly %lld bytes for input %s\n", path,
            (long long)info->nbytes, info->name);
    exit(2);
  }
  return data;
}

static void print_output(const tecomp_tensor_info* info, const void* data) {
  printf("output %s shape [", info->name);
  int64_t count = 1;
  for (int32_t d = 0; d < info->ndim; ++d) {
    printf(d ? ", %lld" : "%lld", (long long)info->shape[d]);
    count *= info->shape[d];
  }
  printf("] %s:", info->dtype);
  int64_t shown = count < 64 ? count : 64;
  for (int64_t i = 0; i < shown; ++i) {
    if (strcmp(info->dtype, "float32") == 0) printf(" %.9g", ((const float*)data)[i]);
    else if (strcmp(info->dtype, "float64") == 0) printf(" %.17g", ((const double*)data)[i]);
    else if (strcmp(info->dtype, "int64") == 0) printf(" %lld", (long long)((const int64_t*)data)[i]);
    else if (strcmp(info->dtype, "int32") == 0) printf(" %d", ((const int32_t*)data)[i]);
    else { printf(" (dtype not printed)"); break; }
  }
  printf(count > shown ? " ...\n" : "\n");
}

int main(int argc, char** argv) {
  int profile = argc > 1 && strcmp(argv[argc - 1], "--profile") == 0;
  int nargs = argc - profile;
  if (nargs < 2) {
    fprintf(stderr, "usage: %s model.so [input.bin ...] [--profile]\n", argv[0]);
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) { fprintf(stderr, "run_model: %s\n", dlerror()); return 2; }
  tecomp_model_count_fn num_inputs = (tecomp_model_count_fn)need(lib, "tecomp_model_num_inputs");
  tecomp_model_count_fn num_outputs = (tecomp_model_count_fn)need(lib, "tecomp_model_num_outputs");
  tecomp_model_count_fn num_steps = (tecomp_model_count_fn)need(lib, "tecomp_model_num_steps");
  tecomp_model_tensor_fn input = (tecomp_model_tensor_fn)need(lib, "tecomp_model_input");
  tecomp_model_tensor_fn output = (tecomp_model_tensor_fn)need(lib, "tecomp_model_output");
  tecomp_model_step_label_fn step_label = (tecomp_model_step_label_fn)need(lib, "tecomp_model_step_label");
  tecomp_model_create_fn create = (tecomp_model_create_fn)need(lib, "tecomp_model_create");
  tecomp_model_destroy_fn destroy = (tecomp_model_destroy_fn)need(lib, "tecomp_model_destroy");
  tecomp_model_run_fn run = (tecomp_model_run_fn)need(lib, "tecomp_model_run");
  tecomp_model_profile_fn run_profiled = (tecomp_model_profile_fn)need(lib, "tecomp_model_profile");

  int32_t n_in = num_inputs(), n_out = num_outputs();
  if (nargs - 2 != 0 && nargs - 2 != n_in) {
    fprintf(stderr, "run_model: the model has %d inputs, %d files given\n", n_in, nargs - 2);
    return 2;
  }
  void** ins = calloc((size_t)n_in + 1, sizeof(void*));
  void** outs = calloc((size_t)n_out + 1, sizeof(void*));
  for (int32_t i = 0; i < n_in; ++i) ins[i] = read_input(input(i), nargs > 2 ? argv[2 + i] : NULL);
  for (int32_t i = 0; i < n_out; ++i) outs[i] = malloc(output(i)->nbytes ? (size_t)output(i)->nbytes : 1);

  tecomp_model* model = create();
  if (!model) { fprintf(stderr, "run_model: cannot allocate the model\n"); return 2; }
  int32_t steps = num_steps();
  double* seconds = calloc((size_t)steps + 1, sizeof(double));
  int32_t rc = profile ? run_profiled(model, (void* const*)ins, (void* const*)outs, seconds)
                       : run(model, (void* const*)ins, (void* const*)outs);
  if (rc != 0) { fprintf(stderr, "run_model: the model failed with code %d\n", rc); return 1; }
  for (int32_t i = 0; i < n_out; ++i) print_output(output(i), outs[i]);
  if (profile)
    for (int32_t k = 0; k < steps; ++k) printf("step %d %s %.3f us\n", k, step_label(k), seconds[k] * 1e6);

  destroy(model);
  for (int32_t i = 0; i < n_in; ++i) free(ins[i]);
  for (int32_t i = 0; i < n_out; ++i) free(outs[i]);
  free(ins); free(outs); free(seconds);
  dlclose(lib);
  return 0;
}
