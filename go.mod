module github.com/netmsg-go/netmsg

go 1.26.0

require go.uber.org/goleak v1.3.0

require (
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
