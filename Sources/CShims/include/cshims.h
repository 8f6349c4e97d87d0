// CShims: what Swift cannot call or import on its own. Each area has its own header,
// prefixed ks_ (kata-swift); each wrapper says why it exists.
#ifndef KATA_SWIFT_CSHIMS_H
#define KATA_SWIFT_CSHIMS_H
#endif
