#pragma once
// cka-similarity: Ctrl-C (SIGINT) and SIGTERM end a run cleanly — the computation stops at its next unit
// of work, the staged outputs are removed, one line says so, and the process ends by the signal (status
// 130 for Ctrl-C in a shell). A second signal ends it at once. Not under mpirun, whose launcher forwards
// signals to every process (a process that stopped on its own could leave the others in a collective).

#include <csignal>
#include <string>

namespace tool {

/// The signal received, or 0.
inline volatile std::sig_atomic_t received_signal = 0;

/// Thrown at the next check after a signal; main ends the process by the signal once the outputs are gone.
struct signalled {
  int number;
};

extern "C" inline void on_signal(int number) {
  if (received_signal != 0) {  // the second one: end now, by the signal's default action
    std::signal(number, SIG_DFL);
    std::raise(number);
    return;
  }
  received_signal = number;
}

/// Installs the handlers for SIGINT and SIGTERM.
inline void catch_signals() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and writes in progress go on; the checks stop the run
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

/// The check between units of work (cka::interrupt_check calls it in the library's long loops; the tool
/// calls it between its own steps).
inline void stop_if_signalled() {
  if (received_signal != 0) throw signalled{int(received_signal)};
}

/// "interrupt (SIGINT)" for the line on stderr.
inline std::string signal_name(int number) {
  return number == SIGINT ? "SIGINT" : number == SIGTERM ? "SIGTERM" : "signal " + std::to_string(number);
}

}  // namespace tool
