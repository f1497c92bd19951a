package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// machine is where and when a run was taken, as the netbench driver
// describes it (bench/driver.Machine, which sigbench does not import: it
// would bring in every benchmark peer, ENet's cgo included).
type machine struct {
	cpu, kernel, load, loadAfter, command string
	cpus                                  int
	started                               time.Time
	took                                  time.Duration
}

func thisMachine(args []string) machine {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return machine{cpu: cpuModel(), kernel: readTrim("/proc/sys/kernel/osrelease"), load: loadAvg(),
		command: strings.Join(q, " "), cpus: runtime.NumCPU(), started: time.Now().UTC()}
}

func (m *machine) finish() {
	m.took = time.Since(m.started).Round(time.Second)
	m.loadAfter = loadAvg()
}

func (m machine) lines() []string {
	return []string{
		fmt.Sprintf("%s, %d CPUs, Linux %s, %s, GOMAXPROCS default", m.cpu, m.cpus, m.kernel, runtime.Version()),
		fmt.Sprintf("%s, %s; load average before %s, after %s", m.started.Format("2006-01-02 15:04 MST"), m.took, m.load, m.loadAfter),
		"command: " + m.command,
	}
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	return strings.Join(f[:min(3, len(f))], " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
