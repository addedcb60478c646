// Added to github.com/kcp-dev/virtual-workspace-framework@v0.31.2/pkg/forwardingregistry
// with `go build -overlay` (see xtask's deps task and tools/README.md).
//
// kcp v0.32.3 passes forwardingregistry.ValidatePathSegmentName as the name validator of its
// virtual-workspace REST storage. virtual-workspace-framework v0.32.x, which exports it, is
// not served by the module proxy this project can reach; v0.31.2 is, and it validates names
// with path.ValidatePathSegmentName inline. This exports that same function under the name
// kcp v0.32.3 expects, so the behaviour is unchanged.

package forwardingregistry

import "k8s.io/apimachinery/pkg/api/validation/path"

// ValidatePathSegmentName validates that a name can be used as a URL path segment.
var ValidatePathSegmentName = path.ValidatePathSegmentName
