// Accumulation states: exact linear CKA over rows added in chunks, mergeable and reducible as flat arrays.

#include "common.hpp"

#include <cka/state.hpp>

#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <filesystem>
#include <sstream>

namespace cka::python {

using namespace nb::literals;

namespace {

/// The state's flat array as a writable NumPy view that keeps the state object alive.
nb::object flat_view(nb::handle self, double* data, std::size_t size) {
  const std::size_t shape[1] = {size};
  return nb::cast(nb::ndarray<nb::numpy, double>(data, 1, shape, self));
}

nb::object vector_to_numpy(const cka::vector<double>& v) {
  return to_numpy(std::vector<double>(v.data(), v.data() + v.size()));
}

/// A 1-D float32/float64 array (any stride) as a vector of doubles, or TypeError/ValueError naming it.
cka::vector<double> vector_of(const char* fn, const char* name, nb::handle h) {
  matrix_arg a;
  a.array = import_array(fn, name, h);
  if (a.array.ndim() != 1) value_error(std::string("cka.") + fn + ": " + name + " must be 1-D");
  const bool is_double = require_float(fn, name, a.array);
  cka::vector<double> v(index(a.array.shape(0)));
  for (index i = 0; i < v.size(); ++i) {
    v(i) = is_double ? static_cast<const double*>(a.array.data())[i * a.array.stride(0)]
                     : double(static_cast<const float*>(a.array.data())[i * a.array.stride(0)]);
  }
  return v;
}

cka::vector<double> shift_of(const char* name, nb::handle h) { return vector_of("LinearState", name, h); }

/// Pickling (and copy.copy/deepcopy) of a state: its record as a float64 NumPy array; unpickling rebuilds
/// it with every check of `load`, so a damaged pickle is a ValueError, never a state that lies.
template <class State>
void pickle_by_record(nb::class_<State>& c, const char* name) {
  c.def("__getstate__", [](const State& s) {
     const cka::vector<double> r = s.record();
     return to_numpy(std::vector<double>(r.data(), r.data() + r.size()));
   })
   .def("__setstate__", [name](State* self, nb::handle state) {
     const std::string fn = std::string(name) + ".__setstate__";
     cka::vector<double> r = vector_of(fn.c_str(), "the pickled state", state);
     new (self) State(State::from_record(r, "cka." + fn + ": the pickled state"));
   });
}

/// The sample count for a repr: the flat array's first value, as a whole number where it is one (a
/// damaged array's value as it is, so that printing a state never raises).
std::string samples_text(double count) {
  if (cka::detail::whole_count(count)) return std::to_string(static_cast<long long>(count));
  std::ostringstream text;
  text << count;
  return text.str();
}

}  // namespace

void register_states(nb::module_& m) {
  using linear = cka::linear_state;
  nb::class_<linear> linear_class(m, "LinearState");
  linear_class
      .def(
          "__init__",
          [](linear* self, nb::handle x_features, nb::handle y_features) {
            const index d1 = index(int_arg("LinearState", "x_features", x_features));
            const index d2 = index(int_arg("LinearState", "y_features", y_features));
            new (self) linear(d1, d2);
          },
          "x_features"_a, "y_features"_a)
      .def_static(
          "with_shift",
          [](nb::handle shift_x, nb::handle shift_y) { return linear(shift_of("shift_x", shift_x), shift_of("shift_y", shift_y)); },
          "shift_x"_a, "shift_y"_a)
      .def(
          "add",
          [](linear& s, nb::handle x, nb::handle y) {
            matrix_arg xa = to_matrix("LinearState.add", "x", x), ya = to_matrix("LinearState.add", "y", y);
            nb::gil_scoped_release unlocked;
            visit(xa, [&](const auto& xv) { visit(ya, [&](const auto& yv) { s.add(xv, yv); }); });
          },
          "x"_a, "y"_a)
      .def("merge", &linear::merge, "other"_a)
      .def("cka", [](const linear& s, bool debiased) { return s.cka(estimator_of(debiased)); }, nb::kw_only(),
           "debiased"_a = false)
      .def("hsic", [](const linear& s, bool debiased) { return s.hsic(estimator_of(debiased)); }, nb::kw_only(),
           "debiased"_a = false)
      .def_prop_ro("samples", &linear::samples)
      .def_prop_ro("x_features", &linear::x_features)
      .def_prop_ro("y_features", &linear::y_features)
      .def_prop_ro("shift", [](const linear& s) -> nb::object {
        if (!s.has_shift()) return nb::none();
        return vector_to_numpy(s.shift());
      })
      .def_prop_ro("data", [](nb::handle self) {
        linear& s = nb::cast<linear&>(self);
        return flat_view(self, s.data(), s.size());
      })
      .def("save", [](const linear& s, const std::filesystem::path& path) { s.save(path.string()); }, "path"_a)
      .def_static("load", [](const std::filesystem::path& path) { return linear::load(path.string()); }, "path"_a)
      .def("__repr__", [](const linear& s) {
        return "cka.LinearState(x_features=" + std::to_string(s.x_features()) + ", y_features=" +
               std::to_string(s.y_features()) + ", samples=" + samples_text(s.data()[0]) + ")";
      });
  pickle_by_record(linear_class, "LinearState");

  using layers = cka::layers_state;
  nb::class_<layers> layers_class(m, "LayersState");
  layers_class
      .def(
          "__init__",
          [](layers* self, nb::handle widths) {
            if (!nb::isinstance<nb::sequence>(widths) || nb::isinstance<nb::str>(widths)) {
              type_error(std::string("cka.LayersState: widths must be a list of ints, not ") + py_type_name(widths));
            }
            std::vector<index> w;
            for (nb::handle h : widths) {
              const std::string label = "widths[" + std::to_string(w.size()) + "]";
              w.push_back(index(int_arg("LayersState", label.c_str(), h)));
            }
            new (self) layers(w);
          },
          "widths"_a)
      .def(
          "add",
          [](layers& s, nb::handle chunks) {
            const char* fn = "LayersState.add";
            if (!nb::isinstance<nb::sequence>(chunks)) {
              type_error(std::string("cka.") + fn + ": chunks must be a list of 2-D arrays, one per layer");
            }
            std::vector<matrix_arg> all;
            std::size_t i = 0;
            for (nb::handle h : chunks) {
              const std::string label = "chunks[" + std::to_string(i++) + "]";
              all.push_back(to_matrix(fn, label.c_str(), h));
            }
            nb::gil_scoped_release unlocked;
            // One view type for all chunks: float64 C order unless all share one dtype and order.
            bool same = true;
            for (const auto& a : all) same = same && a.is_double == all.front().is_double && a.row_major == all.front().row_major;
            if (!same) {
              for (auto& a : all) {
                promote(a);
                make_row_major(a);
              }
            }
            if (all.empty()) {
              s.add(std::vector<map_of<double, Eigen::RowMajor>>{});
              return;
            }
            visit(all.front(), [&](const auto& first) {
              using V = std::decay_t<decltype(first)>;
              using T = typename V::Scalar;
              std::vector<V> views;
              for (const auto& a : all) views.emplace_back(static_cast<const T*>(a.ptr()), a.rows, a.cols, Eigen::OuterStride<>(a.outer));
              s.add(views);
            });
          },
          "chunks"_a)
      .def("merge", &layers::merge, "other"_a)
      .def("cka", [](const layers& s, bool debiased) { return to_numpy(s.cka(estimator_of(debiased))); }, nb::kw_only(),
           "debiased"_a = false)
      .def_prop_ro("samples", &layers::samples)
      .def_prop_ro("layers", &layers::layers)
      .def_prop_ro("shift", [](const layers& s) -> nb::object {
        if (!s.has_shift()) return nb::none();
        return vector_to_numpy(s.shift());
      })
      .def_prop_ro("data", [](nb::handle self) {
        layers& s = nb::cast<layers&>(self);
        return flat_view(self, s.data(), s.size());
      })
      .def("save", [](const layers& s, const std::filesystem::path& path) { s.save(path.string()); }, "path"_a)
      .def_static("load", [](const std::filesystem::path& path) { return layers::load(path.string()); }, "path"_a)
      .def("__repr__", [](const layers& s) {
        return "cka.LayersState(layers=" + std::to_string(s.layers()) + ", samples=" + samples_text(s.data()[0]) + ")";
      });
  pickle_by_record(layers_class, "LayersState");
}

}  // namespace cka::python
