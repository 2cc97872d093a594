/* The C API that CPython's pyexpat module exports as the capsule
 * "pyexpat.expat_CAPI" (the route _elementtree uses to reach libexpat).
 *
 * Declared here on our own so that the build needs neither expat.h nor
 * pyexpat.h: the layout is CPython's stable one (fields are only ever added
 * at the end; `size` tells how many a given interpreter has).  Enum results
 * are declared as int, which is how C passes them on every platform we build
 * for.
 */
#ifndef XMPP_EXPAT_CAPI_H
#define XMPP_EXPAT_CAPI_H

#include <stddef.h>

typedef struct XML_ParserStruct *XMPP_XML_Parser;
typedef char XMPP_XML_Char;

typedef void (*XMPP_StartElementHandler)(void *ud, const XMPP_XML_Char *name,
                                         const XMPP_XML_Char **atts);
typedef void (*XMPP_EndElementHandler)(void *ud, const XMPP_XML_Char *name);
typedef void (*XMPP_CharacterDataHandler)(void *ud, const XMPP_XML_Char *s,
                                          int len);
typedef void (*XMPP_CommentHandler)(void *ud, const XMPP_XML_Char *data);
typedef void (*XMPP_ProcessingInstructionHandler)(void *ud,
                                                  const XMPP_XML_Char *target,
                                                  const XMPP_XML_Char *data);
typedef void (*XMPP_DefaultHandler)(void *ud, const XMPP_XML_Char *s, int len);
typedef void (*XMPP_StartNamespaceDeclHandler)(void *ud,
                                               const XMPP_XML_Char *prefix,
                                               const XMPP_XML_Char *uri);
typedef void (*XMPP_EndNamespaceDeclHandler)(void *ud,
                                             const XMPP_XML_Char *prefix);
typedef void (*XMPP_StartDoctypeDeclHandler)(void *ud,
                                             const XMPP_XML_Char *name,
                                             const XMPP_XML_Char *sysid,
                                             const XMPP_XML_Char *pubid,
                                             int has_internal_subset);

struct xmpp_expat_capi {
    char *magic;
    int size;
    int MAJOR_VERSION;
    int MINOR_VERSION;
    int MICRO_VERSION;
    const char *(*ErrorString)(int code);
    int (*GetErrorCode)(XMPP_XML_Parser parser);
    unsigned long (*GetErrorColumnNumber)(XMPP_XML_Parser parser);
    unsigned long (*GetErrorLineNumber)(XMPP_XML_Parser parser);
    int (*Parse)(XMPP_XML_Parser parser, const char *s, int len, int isFinal);
    XMPP_XML_Parser (*ParserCreate_MM)(const XMPP_XML_Char *encoding,
                                       const void *memsuite,
                                       const XMPP_XML_Char *sep);
    void (*ParserFree)(XMPP_XML_Parser parser);
    void (*SetCharacterDataHandler)(XMPP_XML_Parser parser,
                                    XMPP_CharacterDataHandler handler);
    void (*SetCommentHandler)(XMPP_XML_Parser parser,
                              XMPP_CommentHandler handler);
    void (*SetDefaultHandlerExpand)(XMPP_XML_Parser parser,
                                    XMPP_DefaultHandler handler);
    void (*SetElementHandler)(XMPP_XML_Parser parser,
                              XMPP_StartElementHandler start,
                              XMPP_EndElementHandler end);
    void (*SetNamespaceDeclHandler)(XMPP_XML_Parser parser,
                                    XMPP_StartNamespaceDeclHandler start,
                                    XMPP_EndNamespaceDeclHandler end);
    void (*SetProcessingInstructionHandler)(
        XMPP_XML_Parser parser, XMPP_ProcessingInstructionHandler handler);
    void (*SetUnknownEncodingHandler)(XMPP_XML_Parser parser, void *handler,
                                      void *data);
    void (*SetUserData)(XMPP_XML_Parser parser, void *userData);
    void (*SetStartDoctypeDeclHandler)(XMPP_XML_Parser parser,
                                       XMPP_StartDoctypeDeclHandler start);
    int (*SetEncoding)(XMPP_XML_Parser parser, const XMPP_XML_Char *encoding);
    int (*DefaultUnknownEncodingHandler)(void *data, const XMPP_XML_Char *name,
                                         void *info);
    int (*SetHashSalt)(XMPP_XML_Parser parser, unsigned long salt);
    /* Only in interpreters whose pyexpat knows libexpat >= 2.6. */
    unsigned char (*SetReparseDeferralEnabled)(XMPP_XML_Parser parser,
                                               unsigned char enabled);
};

/* True when this interpreter's capsule has SetReparseDeferralEnabled. */
#define XMPP_CAPI_HAS_DEFERRAL(c)                                            \
    ((size_t)(c)->size >=                                                    \
         offsetof(struct xmpp_expat_capi, SetReparseDeferralEnabled) +      \
             sizeof(void *) &&                                               \
     (c)->SetReparseDeferralEnabled != NULL)

/* The fields every supported interpreter has (up to SetHashSalt). */
#define XMPP_CAPI_MIN_SIZE                                                   \
    (offsetof(struct xmpp_expat_capi, SetHashSalt))

#endif
