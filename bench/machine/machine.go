// Package machine describes where and when a benchmark ran (CPU, kernel,
// Go, load, command): what its figures must be read with. It imports
// nothing of the benchmark peers, so every bench command can use it.
package machine

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Machine describes where and how a run was taken: what a figure from it
// must be read with.
type Machine struct {
	// CPU is the model name from /proc/cpuinfo ("" where there is none).
	CPU string `json:"cpu"`
	// CPUs is the number of logical CPUs the process may use.
	CPUs int `json:"cpus"`
	// Kernel is /proc/sys/kernel/osrelease.
	Kernel string `json:"kernel,omitempty"`
	// Go is the Go version netbench was built with.
	Go string `json:"go"`
	// Host is the host name.
	Host string `json:"host,omitempty"`
	// Started is when the run began, UTC.
	Started time.Time `json:"started"`
	// Duration is how long the whole run took.
	Duration time.Duration `json:"duration_ns"`
	// LoadBefore and LoadAfter are /proc/loadavg at the start and end.
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
	// Command is the exact command line.
	Command string `json:"command"`
}

// This fills what can be read now: the CPU, the kernel, Go, the host
// name, the start time, the load and the command (args, quoted where they
// need it).
func This(args []string) Machine {
	host, _ := os.Hostname()
	m := Machine{
		CPU:        cpuModel(),
		CPUs:       runtime.NumCPU(),
		Kernel:     readTrim("/proc/sys/kernel/osrelease"),
		Go:         runtime.Version(),
		Host:       host,
		Started:    time.Now().UTC(),
		LoadBefore: LoadAvg(),
	}
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	m.Command = strings.Join(q, " ")
	return m
}

// Finish records the end of the run: its duration and the load.
func (m *Machine) Finish() {
	m.Duration = time.Since(m.Started).Round(time.Second)
	m.LoadAfter = LoadAvg()
}

// Lines is the description as short lines (for a table's header or a
// chart's caption).
func (m Machine) Lines() []string {
	cpu := m.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	return []string{
		fmt.Sprintf("%s, %d CPUs, Linux %s, %s, GOMAXPROCS default", cpu, m.CPUs, m.Kernel, m.Go),
		fmt.Sprintf("%s, %s; load average before %s, after %s", m.Started.Format("2006-01-02 15:04 MST"), m.Duration, firstThree(m.LoadBefore), firstThree(m.LoadAfter)),
		"command: " + m.Command,
	}
}

func firstThree(load string) string {
	f := strings.Fields(load)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// LoadAvg returns the first line of /proc/loadavg, or "" where there is
// none.
func LoadAvg() string { return readTrim("/proc/loadavg") }
